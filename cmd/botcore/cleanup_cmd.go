package main

import (
	"fmt"
	"strings"

	"github.com/bot-core/delivery/pipelines/registry"
)

type cleanupCmd struct {
	Keep    int      `required:"" placeholder:"N" help:"How many of the newest releases to keep per service (at least 1)."`
	Service []string `short:"s" placeholder:"NAME" help:"Service to clean up (repeatable; default: all three services)."`
	Yes     bool     `help:"Really delete; without it cleanup only prints what it would delete."`
}

type serviceCleanup struct {
	Service    string               `json:"service"`
	Repository string               `json:"repository"`
	Plan       registry.CleanupPlan `json:"plan"`
	Deleted    int                  `json:"deleted_digests"`
}

type cleanupReport struct {
	DryRun   bool             `json:"dry_run"`
	Services []serviceCleanup `json:"services"`
}

func (c *cleanupCmd) Validate() error { return checkServices(c.Service) }

func (c *cleanupCmd) Run(g *Globals, a *app) error {
	if c.Keep < 1 {
		return fmt.Errorf("--keep %d is too low: %w; pass --keep 1 or more", c.Keep, registry.ErrKeepTooLow)
	}
	info, err := g.info()
	if err != nil {
		return err
	}
	opts := a.remoteOptions(info)
	report := cleanupReport{DryRun: !c.Yes, Services: []serviceCleanup{}}
	var runErr error
	for _, s := range serviceNames(c.Service) {
		repo, err := info.Repo(s)
		if err != nil {
			return err
		}
		plan, deleted, err := registry.Cleanup(a.ctx, repo, c.Keep, c.Yes, a.progress, opts...)
		if err != nil {
			runErr = registry.Explain(err, info)
			if deleted > 0 || len(plan.Delete) > 0 {
				report.Services = append(report.Services, serviceCleanup{Service: s, Repository: repo.String(), Plan: plan, Deleted: deleted})
			}
			break
		}
		report.Services = append(report.Services, serviceCleanup{Service: s, Repository: repo.String(), Plan: plan, Deleted: deleted})
	}

	if g.JSON {
		if err := a.printJSON(report); err != nil {
			return err
		}
		return runErr
	}
	var digests, tagCount, kept, done int
	for _, sc := range report.Services {
		fmt.Fprintf(a.stdout, "%s (%s): keeping releases %s\n", sc.Service, sc.Repository, strings.Join(sc.Plan.KeptReleases, ", "))
		for _, k := range sc.Plan.Kept {
			fmt.Fprintf(a.stdout, "  %-12s  %s  %s  (%s)\n", "keep", shortDigest(k.Digest), shortTags(k.Tags), k.Reasons[0])
		}
		verb := "would delete"
		if c.Yes {
			verb = "delete"
		}
		for i, d := range sc.Plan.Delete {
			state := verb
			if c.Yes && i >= sc.Deleted {
				state = "failed"
			}
			fmt.Fprintf(a.stdout, "  %-12s  %s  %s\n", state, shortDigest(d.Digest), shortTags(d.Tags))
		}
		digests += len(sc.Plan.Delete)
		tagCount += sc.Plan.DeletedTags()
		kept += len(sc.Plan.Kept)
		done += sc.Deleted
	}
	repos := plural(len(report.Services), "repository", "repositories")
	switch {
	case runErr != nil:
		fmt.Fprintf(a.stdout, "stopped after deleting %s of %d planned in %s\n", plural(done, "digest", "digests"), digests, repos)
	case c.Yes:
		fmt.Fprintf(a.stdout, "deleted %s (%s) in %s; kept %s\n", plural(done, "digest", "digests"), plural(tagCount, "tag", "tags"), repos, plural(kept, "tagged digest", "tagged digests"))
	default:
		fmt.Fprintf(a.stdout, "dry run: would delete %s (%s) in %s; kept %s; re-run with --yes to delete\n", plural(digests, "digest", "digests"), plural(tagCount, "tag", "tags"), repos, plural(kept, "tagged digest", "tagged digests"))
	}
	return runErr
}

// Help is the long help of cleanup: its rules.
func (c *cleanupCmd) Help() string {
	return `Rules, per service repository:
  - A release is a full version tag without pre-release (v1.2.3 or 1.2.3, the
    same release); the newest --keep releases are kept.
  - Pre-releases (v2.0.0-rc.1) do not count toward --keep: those newer than
    the oldest kept release are kept, older ones are deleted (with no release
    at all, the newest --keep pre-releases are kept).
  - Every other tag (latest, main, 1.2, 1, sha-*, pr-*, ...) is never
    deleted, nor is anything it points to.
  - A digest any kept tag points to is kept, whatever other tags it has, and
    so is every manifest a kept index references.
  - Deletion is by digest (repo@sha256:...), which removes every tag on it;
    cosign sha256-<hex>.sig/.att/.sbom tags of a deleted digest go with it.`
}

func shortTags(list []string) string {
	out := make([]string, len(list))
	for i, t := range list {
		out[i] = registry.ShortTag(t)
	}
	return strings.Join(out, ", ")
}
