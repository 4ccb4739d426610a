package main

import (
	"fmt"

	"github.com/bot-core/delivery/pipelines/registry"
)

type versionsCmd struct {
	Service []string `short:"s" placeholder:"NAME" help:"Service to list (repeatable; default: rust-core-engine, python-ai-service, nextjs-ui-dashboard)."`
}

type serviceVersions struct {
	Service    string             `json:"service"`
	Repository string             `json:"repository"`
	Tags       []registry.TagInfo `json:"tags"`
}

func (c *versionsCmd) Validate() error { return checkServices(c.Service) }

func (c *versionsCmd) Run(g *Globals, a *app) error {
	info, err := g.info()
	if err != nil {
		return err
	}
	opts := a.remoteOptions(info)
	var all []serviceVersions
	for _, s := range serviceNames(c.Service) {
		repo, err := info.Repo(s)
		if err != nil {
			return err
		}
		list, err := registry.Versions(a.ctx, repo, a.progress, opts...)
		if err != nil {
			return registry.Explain(err, info)
		}
		all = append(all, serviceVersions{Service: s, Repository: repo.String(), Tags: list})
	}
	if g.JSON {
		return a.printJSON(all)
	}
	for i, sv := range all {
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		fmt.Fprintf(a.stdout, "%s (%s)\n", sv.Service, sv.Repository)
		tw := a.table()
		fmt.Fprintln(tw, "  TAG\tDIGEST\tCREATED\tKIND")
		for _, t := range sv.Tags {
			kind := string(t.Class)
			switch t.Class {
			case registry.ClassOther:
				kind = "other (not semver)"
			case registry.ClassCosign:
				kind = "cosign (not semver)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", registry.ShortTag(t.Tag), shortDigest(t.Digest), formatTime(t.Created), kind)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(sv.Tags) == 0 {
			fmt.Fprintln(a.stdout, "  (no tags)")
		}
	}
	return nil
}
