package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/bot-core/delivery/cmd/botcore/internal/signing"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/bot-core/delivery/pipelines/tags"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/daemon"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"
)

const (
	defaultDockerSocket = "/var/run/docker.sock"
	dockerPingTimeout   = 3 * time.Second
	// Annotations naming an image in an OCI layout: the OCI tag name, and
	// the full reference the way containerd (and so `docker load`) reads it.
	annotationRefName       = "org.opencontainers.image.ref.name"
	annotationContainerdRef = "io.containerd.image.name"
)

type pullCmd struct {
	Version string   `required:"" placeholder:"V" help:"Release to pull, e.g. v1.2.3 (a semantic version, as released)."`
	Service []string `short:"s" placeholder:"S" help:"Service to pull (repeatable; default: rust-core-engine, python-ai-service, nextjs-ui-dashboard)."`
	Output  string   `short:"o" placeholder:"DIR" default:"images" help:"Directory for the OCI layouts, one per service (DIR/<service>; default ./images/<service>), written when no Docker engine answers."`
	// Verify predates verification by default; accepting it keeps old
	// scripts working.
	Verify             bool `help:"Accepted for compatibility: pull always verifies each image's cosign signature first (policy: --key, or --certificate-identity with --certificate-oidc-issuer; see botcore verify)."`
	InsecureSkipVerify bool `name:"insecure-skip-verify" help:"DANGEROUS: pull without verifying image signatures."`

	Policy verifyFlags `embed:"" group:"Verification"`
}

// pullResult is what pull reports per service.
type pullResult struct {
	Service   string   `json:"service"`
	Reference string   `json:"reference"`
	Digest    string   `json:"digest"`
	Into      string   `json:"into"` // "docker" or "oci-layout"
	Path      string   `json:"path,omitempty"`
	Platforms []string `json:"platforms"`
}

func (c *pullCmd) Validate() error { return checkServices(c.Service) }

func (c *pullCmd) Run(g *Globals, a *app) error {
	if err := tags.ValidateVersion(c.Version); err != nil {
		return err
	}
	info, err := g.info()
	if err != nil {
		return err
	}
	opts := a.remoteOptions(info)
	var verifier *signing.Verifier
	switch {
	case c.InsecureSkipVerify && (c.Verify || c.Policy.given()):
		return errors.New("--insecure-skip-verify contradicts --verify and the verification flags given: drop one or the other")
	case c.InsecureSkipVerify:
		a.progress("WARNING: --insecure-skip-verify: image signatures will NOT be verified; whatever the registry serves for %s will be pulled", c.Version)
	case !c.Policy.given():
		return errors.New("pull verifies every image's signature, but no policy was given: pass --key, or --certificate-identity with --certificate-oidc-issuer, or --insecure-skip-verify to pull unverified images")
	default:
		if verifier, err = c.Policy.verifier(a); err != nil {
			return fmt.Errorf("pull: %w", err)
		}
	}

	// Resolve (and verify) every service before pulling any, so a refused
	// image leaves nothing half-pulled. Pulling goes by the resolved
	// descriptor, i.e. the digest that was verified, even if the tag moves.
	type resolved struct {
		service string
		tag     name.Tag
		desc    *remote.Descriptor
	}
	var todo []resolved
	for _, s := range serviceNames(c.Service) {
		repo, err := info.Repo(s)
		if err != nil {
			return err
		}
		tag := repo.Tag(c.Version)
		a.progress("resolving %s", tag)
		desc, err := remote.Get(tag, opts...)
		if err != nil {
			return registry.Explain(err, info)
		}
		if verifier != nil {
			res, err := verifier.VerifyImage(a.ctx, repo.Digest(desc.Digest.String()), opts...)
			if err != nil {
				return fmt.Errorf("refusing to pull %s: %w", tag, verifyError(err, info))
			}
			a.progress("verified %s (%s): %s", tag, shortDigest(desc.Digest.String()), describeVerified(res))
			// The signature says who built it; the label, which it covers,
			// says which release it is.
			if err := registry.CheckRelease(repo.Digest(desc.Digest.String()), desc, c.Version); err != nil {
				return fmt.Errorf("refusing to pull %s: %w", tag, verifyError(err, info))
			}
		}
		todo = append(todo, resolved{s, tag, desc})
	}

	host, why := dockerEngine(a.ctx, a.env)
	var docker *client.Client
	if host != "" {
		if docker, err = client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation()); err != nil {
			return fmt.Errorf("cannot use the Docker engine at %s: %w", host, err)
		}
		defer docker.Close()
		a.progress("Docker engine at %s answers: pulling into it (platform linux/%s)", host, runtime.GOARCH)
	} else {
		a.progress("no Docker engine (%s): writing OCI layouts under %s", why, c.Output)
	}

	var results []pullResult
	for _, r := range todo {
		s, tag, desc := r.service, r.tag, r.desc
		res := pullResult{Service: s, Reference: tag.String(), Digest: desc.Digest.String()}
		if docker != nil {
			err = pullIntoDocker(a, docker, tag, desc, &res, opts)
		} else {
			err = pullIntoLayout(a, filepath.Join(c.Output, s), tag, desc, &res)
		}
		if err != nil {
			return registry.Explain(err, info)
		}
		results = append(results, res)
	}

	if g.JSON {
		return a.printJSON(results)
	}
	tw := a.table()
	fmt.Fprintln(tw, "SERVICE\tDIGEST\tPLATFORMS\tINTO")
	for _, r := range results {
		into := "docker"
		if r.Into != "docker" {
			into = r.Path
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Service, shortDigest(r.Digest), strings.Join(r.Platforms, ","), into)
	}
	return tw.Flush()
}

// pullIntoDocker loads the image of the host's architecture into the
// Docker engine under the release tag.
func pullIntoDocker(a *app, docker *client.Client, tag name.Tag, desc *remote.Descriptor, res *pullResult, opts []remote.Option) error {
	platform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	var img v1.Image
	var err error
	if desc.MediaType.IsIndex() {
		// By digest: the index that was resolved (and maybe verified), even
		// if the tag has moved since.
		img, err = remote.Image(tag.Context().Digest(desc.Digest.String()), append(opts, remote.WithPlatform(platform))...)
	} else {
		img, err = desc.Image()
	}
	if err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	a.progress("loading %s (%s, %s) into Docker", tag, platform, shortDigest(d.String()))
	if _, err := daemon.Write(tag, img, daemon.WithContext(a.ctx), daemon.WithClient(docker)); err != nil {
		return fmt.Errorf("cannot load %s into the Docker engine: %w", tag, err)
	}
	res.Into, res.Platforms = "docker", []string{platform.String()}
	return nil
}

// pullIntoLayout writes every platform of the release into the OCI layout
// at dir, replacing an earlier copy of the same tag.
func pullIntoLayout(a *app, dir string, tag name.Tag, desc *remote.Descriptor, res *pullResult) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("cannot create the OCI layout %s: %w", dir, err)
		}
	}
	annotations := layout.WithAnnotations(map[string]string{
		annotationRefName:       tag.TagStr(),
		annotationContainerdRef: tag.String(),
	})
	same := match.Annotation(annotationRefName, tag.TagStr())
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		for _, m := range im.Manifests {
			if m.Platform != nil && m.Platform.OS != "unknown" {
				res.Platforms = append(res.Platforms, m.Platform.String())
			}
		}
		a.progress("writing %s (%s) to %s", tag, plural(len(res.Platforms), "platform", "platforms"), dir)
		err = p.ReplaceIndex(idx, same, annotations)
		if err != nil {
			return fmt.Errorf("cannot write %s to the OCI layout %s: %w", tag, dir, err)
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			return err
		}
		if cf, err := img.ConfigFile(); err == nil {
			res.Platforms = []string{(&v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}).String()}
		}
		a.progress("writing %s (one image) to %s", tag, dir)
		if err := p.ReplaceImage(img, same, annotations); err != nil {
			return fmt.Errorf("cannot write %s to the OCI layout %s: %w", tag, dir, err)
		}
	}
	res.Into, res.Path = "oci-layout", dir
	return nil
}

// dockerEngine returns the Docker host to pull into when its engine answers
// GET /_ping, or "" and why not. DOCKER_HOST (unix:// or tcp:// without
// TLS) wins; otherwise the default socket is tried if it exists.
func dockerEngine(ctx context.Context, env func(string) string) (host, why string) {
	host = env("DOCKER_HOST")
	if host == "" {
		if _, err := os.Stat(defaultDockerSocket); err != nil {
			return "", "DOCKER_HOST is not set and " + defaultDockerSocket + " does not exist"
		}
		host = "unix://" + defaultDockerSocket
	}
	u, err := url.Parse(host)
	if err != nil {
		return "", fmt.Sprintf("DOCKER_HOST %q is not a URL", host)
	}
	tr := &http.Transport{}
	base := "http://docker"
	switch u.Scheme {
	case "unix":
		sock := u.Path
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	case "tcp", "http":
		if env("DOCKER_TLS_VERIFY") != "" || env("DOCKER_CERT_PATH") != "" {
			return "", fmt.Sprintf("DOCKER_HOST %s needs TLS, which botcore pull does not support yet", host)
		}
		base = "http://" + u.Host
	default:
		return "", fmt.Sprintf("DOCKER_HOST %s has the unsupported scheme %q (use unix:// or tcp://)", host, u.Scheme)
	}
	ctx, cancel := context.WithTimeout(ctx, dockerPingTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/_ping", nil)
	if err != nil {
		return "", err.Error()
	}
	hc := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Sprintf("the Docker engine at %s does not answer: %v", host, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Sprintf("the Docker engine at %s answered /_ping with HTTP %d", host, resp.StatusCode)
	}
	return host, ""
}
