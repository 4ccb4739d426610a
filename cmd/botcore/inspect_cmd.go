package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/google/go-containerregistry/pkg/name"
)

type inspectCmd struct {
	Image string `arg:"" name:"service:tag" help:"Service and tag (rust-core-engine:v1.2.3) or digest (rust-core-engine@sha256:...); the tag defaults to latest."`
}

func (c *inspectCmd) Run(g *Globals, a *app) error {
	info, err := g.info()
	if err != nil {
		return err
	}
	ref, err := parseServiceRef(info, c.Image)
	if err != nil {
		return err
	}
	res, err := registry.Inspect(a.ctx, ref, a.progress, a.remoteOptions(info)...)
	if err != nil {
		return registry.Explain(err, info)
	}
	if g.JSON {
		return a.printJSON(res)
	}
	tw := a.table()
	fmt.Fprintf(tw, "reference\t%s\n", res.Reference)
	fmt.Fprintf(tw, "digest\t%s\n", res.Digest)
	fmt.Fprintf(tw, "media type\t%s\n", res.MediaType)
	present := func(tag string) string {
		if tag == "" {
			return "none"
		}
		return "present (" + tag + ", not verified)"
	}
	fmt.Fprintf(tw, "signature\t%s\n", present(res.SignatureTag))
	fmt.Fprintf(tw, "attestation\t%s\n", present(res.AttestationTag))
	fmt.Fprintf(tw, "platforms\t%d\n", len(res.Platforms))
	if res.Attestations > 0 {
		fmt.Fprintf(tw, "attestation manifests\t%d\n", res.Attestations)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range res.Platforms {
		fmt.Fprintf(a.stdout, "\n%s  %s\n", p.Platform, p.Digest)
		fmt.Fprintf(a.stdout, "  size     %s compressed (%d bytes, %s)\n", humanSize(p.Size), p.Size, plural(p.Layers, "layer", "layers"))
		fmt.Fprintf(a.stdout, "  created  %s\n", formatTime(p.Created))
		keys := make([]string, 0, len(p.Labels))
		for k := range p.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(keys) == 0 {
			fmt.Fprintln(a.stdout, "  labels   none")
		}
		for _, k := range keys {
			fmt.Fprintf(a.stdout, "  label    %s=%s\n", k, p.Labels[k])
		}
	}
	return nil
}

// parseServiceRef turns "service:tag", "service@digest" or "service" into a
// reference under the registry prefix.
func parseServiceRef(info registry.Info, s string) (name.Reference, error) {
	service, tag, digest := s, "latest", ""
	if i := strings.Index(s, "@"); i >= 0 {
		service, digest = s[:i], s[i+1:]
	} else if i := strings.LastIndex(s, ":"); i >= 0 {
		service, tag = s[:i], s[i+1:]
	}
	if service == "" || strings.Contains(service, "/") {
		return nil, fmt.Errorf("invalid image %q: give SERVICE:TAG such as rust-core-engine:v1.2.3 (the registry prefix comes from --registry)", s)
	}
	repo, err := info.Repo(service)
	if err != nil {
		return nil, err
	}
	if digest != "" {
		if _, err := name.NewDigest(repo.String()+"@"+digest, name.StrictValidation); err != nil {
			return nil, fmt.Errorf("invalid digest in %q: give SERVICE@sha256:<64 hex digits>", s)
		}
		return repo.Digest(digest), nil
	}
	if _, err := name.NewTag(repo.String()+":"+tag, name.StrictValidation); err != nil || tag == "" {
		return nil, fmt.Errorf("invalid tag in %q: a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'", s)
	}
	return repo.Tag(tag), nil
}
