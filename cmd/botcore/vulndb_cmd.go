package main

import (
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bot-core/delivery/cmd/botcore/internal/scan"
)

// vulnDBCmd lets a release fetch Trivy's database once, before its scans,
// instead of every scan downloading it at the same moment.
type vulnDBCmd struct {
	Check vulnDBCheckCmd `cmd:"" help:"Say within seconds, without downloading, whether scans can have the vulnerability DB: the cache holds one that needs no update, or a repository serves it. Exits non-zero when neither."`
	Fetch vulnDBFetchCmd `cmd:"" help:"Download the vulnerability DB into the cache when it is missing or due for an update, so that the scans sharing that cache find it fresh."`
}

type vulnDBFlags struct {
	CacheDir     string   `placeholder:"DIR" envvar:"TRIVY_CACHE_DIR" help:"Trivy cache directory holding the DB in DIR/db; default $XDG_CACHE_HOME/trivy or ~/.cache/trivy (env: TRIVY_CACHE_DIR)."`
	DBRepository []string `name:"db-repository" placeholder:"REF" envvar:"TRIVY_DB_REPOSITORY" help:"OCI repositories of the DB, tried in order (default: trivy's, mirror.gcr.io/aquasec/trivy-db:2 then ghcr.io/aquasecurity/trivy-db:2; env: TRIVY_DB_REPOSITORY)."`
}

func (f vulnDBFlags) db(a *app) (scan.DB, error) {
	o := scan.DB{CacheDir: f.CacheDir}
	if o.CacheDir == "" {
		o.CacheDir = scan.DefaultCacheDir(a.env)
	}
	var err error
	o.Repositories, err = dbRepositories(f.DBRepository)
	return o, err
}

// dbRepositories parses --db-repository values.
func dbRepositories(refs []string) ([]name.Reference, error) {
	var out []name.Reference
	for _, r := range refs {
		ref, err := name.ParseReference(r)
		if err != nil {
			return nil, fmt.Errorf("invalid --db-repository %q: give an OCI reference such as ghcr.io/aquasecurity/trivy-db:2", r)
		}
		out = append(out, ref)
	}
	return out, nil
}

type vulnDBCheckCmd struct {
	vulnDBFlags `embed:""`
}

func (c *vulnDBCheckCmd) Run(g *Globals, a *app) error {
	o, err := c.db(a)
	if err != nil {
		return err
	}
	if err := scan.CheckDB(a.ctx, o, a.progress); err != nil {
		return withHint(err)
	}
	if g.JSON {
		return a.printJSON(map[string]any{"available": true})
	}
	fmt.Fprintln(a.stdout, "the vulnerability DB is available")
	return nil
}

type vulnDBFetchCmd struct {
	vulnDBFlags `embed:""`
}

// vulnDBSummary is what fetch prints with --json.
type vulnDBSummary struct {
	Dir        string    `json:"dir"`
	Schema     int       `json:"schema_version"`
	UpdatedAt  time.Time `json:"updated_at"`
	NextUpdate time.Time `json:"next_update"`
}

func (c *vulnDBFetchCmd) Run(g *Globals, a *app) error {
	o, err := c.db(a)
	if err != nil {
		return err
	}
	meta, err := scan.FetchDB(a.ctx, o, a.progress)
	if err != nil {
		return withHint(err)
	}
	sum := vulnDBSummary{Dir: scan.DBDir(o), Schema: meta.Version, UpdatedAt: meta.UpdatedAt, NextUpdate: meta.NextUpdate}
	if g.JSON {
		return a.printJSON(sum)
	}
	fmt.Fprintf(a.stdout, "vulnerability DB in %s: schema %d, updated %s, next update %s\n", sum.Dir, sum.Schema,
		sum.UpdatedAt.UTC().Format(time.RFC3339), sum.NextUpdate.UTC().Format(time.RFC3339))
	return nil
}
