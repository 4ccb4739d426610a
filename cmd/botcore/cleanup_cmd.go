package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bot-core/delivery/cmd/botcore/internal/deploy"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/bot-core/delivery/pipelines/release"
)

type cleanupCmd struct {
	Keep           int      `required:"" placeholder:"N" help:"How many of the newest releases to keep per service (at least 1)."`
	Service        []string `short:"s" placeholder:"NAME" help:"Service to clean up (repeatable; default: all three services)."`
	Yes            bool     `help:"Really delete; without it cleanup only prints what it would delete."`
	Protect        []string `placeholder:"DIGEST" help:"Never delete this digest (sha256:...) nor the release it belongs to (repeatable)."`
	ProtectState   []string `name:"protect-state" sep:"none" placeholder:"FILE" help:"Never delete the running release or the rollback target a deploy state file names (repeatable; ./.botcore-deploy.bot-core.json, the state of docker-compose.prod.yml here, is read too whenever it exists)."`
	ProtectRelease []string `name:"protect-release" sep:"none" placeholder:"FILE" help:"Never delete the index and platform digests a release.json lists (repeatable)."`
}

type serviceCleanup struct {
	Service    string               `json:"service"`
	Repository string               `json:"repository"`
	Plan       registry.CleanupPlan `json:"plan"`
	// Applied is what --yes did with each planned deletion it reached.
	Applied []registry.Applied `json:"applied"`
	Deleted int                `json:"deleted_releases"`
}

type cleanupReport struct {
	DryRun bool `json:"dry_run"`
	// Protected are the digests kept whatever --keep says, with why.
	Protected registry.Protected `json:"protected"`
	Services  []serviceCleanup   `json:"services"`
}

// defaultStateFile is the state botcore deploy keeps with its default
// compose file and project, so cleanup run next to the stack protects it
// without being told.
var defaultStateFile = deploy.StateFile("docker-compose.prod.yml", "bot-core")

func (c *cleanupCmd) Validate() error { return checkServices(c.Service) }

// protected reads every protection before any registry is asked, so a typo
// or an unreadable file stops cleanup before anything is deleted.
func (c *cleanupCmd) protected(a *app) (registry.Protected, error) {
	p := registry.Protected{}
	for _, d := range c.Protect {
		if err := p.Add(d, "given with --protect"); err != nil {
			return nil, fmt.Errorf("--protect: %w", err)
		}
	}
	states, noState := c.ProtectState, false
	if !containsPath(states, defaultStateFile) {
		if _, err := os.Stat(defaultStateFile); err == nil || !errors.Is(err, fs.ErrNotExist) {
			states = append(states, defaultStateFile)
		} else {
			noState = len(states) == 0
		}
	}
	for _, f := range states {
		st, err := deploy.LoadState(f)
		if err != nil {
			return nil, fmt.Errorf("--protect-state %s: %w", f, err)
		}
		if st == nil {
			return nil, fmt.Errorf("--protect-state %s: no such file", f)
		}
		for _, r := range []struct {
			role string
			rel  *deploy.Release
		}{{"deployed", st.Running}, {"rollback target", st.Previous}} {
			if r.rel == nil {
				continue
			}
			for _, img := range r.rel.Images {
				why := fmt.Sprintf("%s %s (state file %s)", r.role, r.rel.Version, f)
				if err := p.Add(img.Digest, why); err != nil {
					return nil, fmt.Errorf("deploy state %s, service %s: %w", f, img.Service, err)
				}
			}
		}
	}
	for _, f := range c.ProtectRelease {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--protect-release: %w", err)
		}
		m, err := release.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("--protect-release %s: %w", f, err)
		}
		name := m.Version
		if name == "" {
			name = strings.Join(m.Tags, ", ")
		}
		why := fmt.Sprintf("release %s (%s)", name, f)
		for _, s := range m.Services {
			for _, d := range append([]string{s.IndexDigest}, mapValues(s.Platforms)...) {
				if err := p.Add(d, why); err != nil {
					return nil, fmt.Errorf("--protect-release %s, service %s: %w", f, s.Name, err)
				}
			}
		}
	}
	if noState {
		a.progress("no deploy state file %s here, so only tags, --protect and --protect-release keep a deployed release (pass --protect-state FILE for each deploy host)", defaultStateFile)
	}
	return p, nil
}

func containsPath(list []string, path string) bool {
	for _, p := range list {
		if filepath.Clean(p) == filepath.Clean(path) {
			return true
		}
	}
	return false
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func (c *cleanupCmd) Run(g *Globals, a *app) error {
	if c.Keep < 1 {
		return fmt.Errorf("--keep %d is too low: %w; pass --keep 1 or more", c.Keep, registry.ErrKeepTooLow)
	}
	protected, err := c.protected(a)
	if err != nil {
		return err
	}
	info, err := g.info()
	if err != nil {
		return err
	}
	opts := a.remoteOptions(info)
	report := cleanupReport{DryRun: !c.Yes, Protected: protected, Services: []serviceCleanup{}}
	// Every repository is planned before any is touched, so a failure to
	// plan one leaves all of them as they were.
	var runErr error
	for _, s := range serviceNames(c.Service) {
		repo, err := info.Repo(s)
		if err != nil {
			return err
		}
		plan, err := registry.PlanRepositoryCleanup(a.ctx, repo, c.Keep, protected, a.progress, opts...)
		if err != nil {
			return registry.Explain(err, info)
		}
		report.Services = append(report.Services, serviceCleanup{Service: s, Repository: repo.String(), Plan: plan, Applied: []registry.Applied{}})
	}
	if c.Yes {
		for i := range report.Services {
			sc := &report.Services[i]
			repo, err := info.Repo(sc.Service)
			if err != nil {
				return err
			}
			sc.Applied, err = registry.ApplyCleanup(a.ctx, repo, sc.Plan, a.progress, opts...)
			for _, ap := range sc.Applied {
				if ap.Deleted {
					sc.Deleted++
				}
			}
			if err != nil {
				runErr = registry.Explain(err, info)
				report.Services = report.Services[:i+1]
				break
			}
		}
	}

	if g.JSON {
		if err := a.printJSON(report); err != nil {
			return err
		}
		return runErr
	}
	if len(protected) > 0 {
		fmt.Fprintf(a.stdout, "protecting %s (deploy state, release.json, --protect)\n", plural(len(protected), "digest", "digests"))
	}
	var planned, kept, leftAlone int
	var done registry.CleanupPlan
	for _, sc := range report.Services {
		fmt.Fprintf(a.stdout, "%s (%s): keeping releases %s\n", sc.Service, sc.Repository, strings.Join(sc.Plan.KeptReleases, ", "))
		for _, k := range sc.Plan.Kept {
			fmt.Fprintf(a.stdout, "  %-12s  %s  %s  (%s)\n", "keep", shortDigest(k.Digest), shortTags(k.Tags), strings.Join(k.Reasons, "; "))
		}
		applied := map[string]registry.Applied{}
		for _, ap := range sc.Applied {
			applied[ap.Digest] = ap
		}
		failed := runErr != nil
		for _, d := range sc.Plan.Delete {
			state, note := "would delete", ""
			if c.Yes {
				ap, reached := applied[d.Digest]
				switch {
				case ap.Deleted:
					state = "deleted"
					done.Delete = append(done.Delete, d)
				case ap.LeftAlone != "":
					state, note = "left alone", ap.LeftAlone
					leftAlone++
				case !reached && failed:
					state, failed = "failed", false
				default:
					state = "not reached"
				}
			}
			if note == "" {
				note = deletionExtras(d)
			}
			if note != "" {
				note = "  (" + note + ")"
			}
			fmt.Fprintf(a.stdout, "  %-12s  %s  %s%s\n", state, shortDigest(d.Digest), shortTags(d.Tags), note)
		}
		planned += len(sc.Plan.Delete)
		kept += len(sc.Plan.Kept)
	}
	all := registry.CleanupPlan{}
	for _, sc := range report.Services {
		all.Delete = append(all.Delete, sc.Plan.Delete...)
	}
	repos := plural(len(report.Services), "repository", "repositories")
	switch {
	case runErr != nil:
		fmt.Fprintf(a.stdout, "stopped after deleting %s of %d planned in %s\n", plural(len(done.Delete), "release", "releases"), planned, repos)
	case c.Yes:
		fmt.Fprintf(a.stdout, "deleted %s (%s, %s) in %s; kept %s", plural(len(done.Delete), "release", "releases"),
			plural(done.DeletedManifests(), "manifest", "manifests"), plural(done.DeletedTags(), "tag", "tags"), repos, plural(kept, "tagged digest", "tagged digests"))
		if leftAlone > 0 {
			fmt.Fprintf(a.stdout, "; left %d alone because the registry changed since the plan (run cleanup again to re-plan)", leftAlone)
		}
		fmt.Fprintln(a.stdout)
	default:
		fmt.Fprintf(a.stdout, "dry run: would delete %s (%s, %s) in %s; kept %s; re-run with --yes to delete\n", plural(planned, "release", "releases"),
			plural(all.DeletedManifests(), "manifest", "manifests"), plural(all.DeletedTags(), "tag", "tags"), repos, plural(kept, "tagged digest", "tagged digests"))
	}
	return runErr
}

// deletionExtras names what goes with a deleted release besides its tags.
func deletionExtras(d registry.Deletion) string {
	var parts []string
	if n := len(d.Platforms); n > 0 {
		parts = append(parts, plural(n, "platform manifest", "platform manifests"))
	}
	if n := len(d.Attachments); n > 0 {
		parts = append(parts, plural(n, "signature/attestation tag", "signature/attestation tags"))
	}
	if len(parts) == 0 {
		return ""
	}
	return "with " + strings.Join(parts, ", ")
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
  - A protected digest is never deleted, nor the index holding it: what deploy
    state files name (the running release and the rollback target; the state
    ` + defaultStateFile + ` of docker-compose.prod.yml in the current
    directory is read whenever it exists), what --protect-release files list
    and every --protect digest. They come on top of the --keep newest.
  - A digest any kept tag points to is kept, whatever other tags it has, and
    so is every manifest a kept index references.
  - Deletion is by digest (repo@sha256:...), which removes every tag on it;
    the platform manifests of a deleted index and the cosign
    sha256-<hex>.sig/.att/.sbom tags of all of them go with it.
  - With --yes every tag is read again before deleting: a release whose tags
    moved, vanished or gained a new tag since the plan is left alone.`
}

func shortTags(list []string) string {
	out := make([]string, len(list))
	for i, t := range list {
		out[i] = registry.ShortTag(t)
	}
	return strings.Join(out, ", ")
}
