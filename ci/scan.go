package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"dagger/bot-core/internal/dagger"

	"golang.org/x/sync/errgroup"

	"github.com/bot-core/delivery/pipelines/release"
)

// gateStage scans every image with Trivy and makes its SPDX SBOM with Syft,
// all before anything leaves the engine; a finding at a gating severity ends
// the release with every failing image named.
type gateStage struct {
	tools      *dagger.Supplychain
	db         *vulnDB
	ignoreFile *dagger.File // the source's .trivyignore, if any
}

func (m *BotCore) scanStage(ctx context.Context, db *vulnDB) (gateStage, error) {
	ignore, err := m.optionalFile(ctx, ".trivyignore")
	return gateStage{tools: m.supplychain(), db: db, ignoreFile: ignore}, err
}

// vulnDB is the scans' database: a directory given for offline scans, or
// the cache volume the release fetches it into once, from repositories
// (none: Trivy's own), and the wait for that fetch.
type vulnDB struct {
	offline      *dagger.Directory
	repositories []string
	ready        func() error
	// key tells databases apart (the fetch's summary line, or the offline
	// database's metadata.json), once ready: scans are reused across runs
	// only with the same key.
	key string
}

// vulnDB gets the database ready for the scans. With a given tool a
// database that cannot be had ends the release here, before any build
// (the check takes seconds); a tool the engine compiles makes the check
// wait for that compile, so then the fetch runs beside the builds and its
// failure ends the run through fail, as soon as it is known. services (the
// caller's tunnels; nil ones are dropped in place) reach a mirror on the
// caller's machine.
func (m *BotCore) vulnDB(ctx context.Context, fail context.CancelCauseFunc, offline *dagger.Directory, repositories []string, services []*dagger.Service) (*vulnDB, error) {
	if offline != nil {
		meta, err := offline.File("metadata.json").Contents(ctx)
		if err != nil {
			return nil, fmt.Errorf("--trivy-db: the directory must hold trivy.db and metadata.json: %w", err)
		}
		return &vulnDB{offline: offline, key: meta, ready: func() error { return nil }}, nil
	}
	tunnels := slices.DeleteFunc(services, func(s *dagger.Service) bool { return s == nil })
	tools := m.supplychain()
	cannot := func(err error) error {
		return fmt.Errorf("the vulnerability database cannot be had, so nothing can be scanned or pushed (docs/offline.md): %w", err)
	}
	if m.Tool != nil {
		if _, err := tools.VulnDb(ctx, dagger.SupplychainVulnDbOpts{CheckOnly: true, Repository: repositories, Tunnel: tunnels}); err != nil {
			return nil, cannot(err)
		}
	}
	done := make(chan error, 1)
	db := &vulnDB{repositories: repositories}
	go func() {
		out, err := tools.VulnDb(ctx, dagger.SupplychainVulnDbOpts{Repository: repositories, Tunnel: tunnels})
		if err != nil {
			err = cannot(err)
			fail(err)
		} else {
			fmt.Println(out)
			db.key = out // read only after ready: the channel orders it
		}
		done <- err
	}()
	db.ready = sync.OnceValue(func() error { return <-done })
	return db, nil
}

func (gateStage) String() string { return "scan+sbom" }

// imageReports are one image's scan and SBOM outputs, still in the engine.
type imageReports struct {
	sarif, scanJSON, sbom *dagger.File
	vuln                  *dagger.File // cosign vulnerability predicate
	findings              map[string]int
	failure               string // the gate's verdict; empty when it passed
	// layers and analyzed: how many layers the image has and how many
	// Trivy had to read (none when an image with the same layers was
	// scanned before).
	layers, analyzed int
}

func (s gateStage) Run(ctx context.Context, r *run) error {
	tool, err := r.tool()
	if err != nil {
		return err
	}
	r.rel.Tool = tool
	if err := s.db.ready(); err != nil {
		return err
	}
	reports := make([][]imageReports, len(r.arts))
	eg, gctx := errgroup.WithContext(ctx)
	for i, a := range r.arts {
		reports[i] = make([]imageReports, len(r.plan.Platforms))
		for j, p := range r.plan.Platforms {
			eg.Go(func() (err error) {
				reports[i][j], err = s.image(gctx, r, a, p)
				return err
			})
		}
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	var failed, reused []string
	for i, a := range r.arts {
		for j, p := range r.plan.Platforms {
			rep := reports[i][j]
			rr := release.ReportsFor(a.service.Name, p)
			rr.Findings = rep.findings
			r.out = r.out.WithFile(rr.SARIF, rep.sarif).WithFile(rr.Scan, rep.scanJSON).WithFile(rr.SBOM, rep.sbom)
			a.record.Reports[p] = rr
			a.sboms[p] = rep.sbom
			a.vulns[p] = rep.vuln
			if rep.failure != "" {
				failed = append(failed, fmt.Sprintf("%s (%s): %s", a.service.Name, p, rep.failure))
			}
			if rep.layers > 0 && rep.analyzed == 0 {
				reused = append(reused, fmt.Sprintf("%s (%s)", a.service.Name, p))
			}
		}
	}
	// Say what a relabelled release did not redo (modules/README.md).
	if len(reused) > 0 {
		fmt.Printf("scan+sbom: no layer read again for %d of %d images (same layers scanned before): %s\n",
			len(reused), len(r.arts)*len(r.plan.Platforms), strings.Join(reused, ", "))
	}
	db := "download"
	if s.db.offline != nil {
		db = "directory"
	}
	r.rel.Scan = &release.ScanPolicy{Severities: r.plan.Severities, IgnoreUnfixed: r.plan.IgnoreUnfixed, DB: db,
		DBRepositories: s.db.repositories, Failed: failed}
	if len(failed) > 0 {
		return fmt.Errorf("vulnerability gate (%s) failed, nothing was pushed:\n%s\n(fix or upgrade the packages, or list accepted CVEs in .trivyignore)",
			strings.Join(r.plan.Severities, ","), strings.Join(failed, "\n"))
	}
	return nil
}

// image scans and SBOMs one platform of a service's layout. The SBOM does
// not wait for the scan: both only read the layout.
func (s gateStage) image(ctx context.Context, r *run, a *artifact, platform string) (imageReports, error) {
	sbom := s.tools.Sbom(a.layout.Dir, platform, dagger.SupplychainSbomOpts{Name: a.service.Name})
	sbomDone := make(chan error, 1)
	go func() {
		_, err := sbom.Sync(ctx)
		sbomDone <- err
	}()
	res := s.tools.Scan(a.layout.Dir, platform, dagger.SupplychainScanOpts{
		Name: a.service.Name, Severity: strings.Join(r.plan.Severities, ","), IgnoreUnfixed: r.plan.IgnoreUnfixed,
		TrivyDb: s.db.offline, TrivyDbRepository: s.db.repositories, Trivyignore: s.ignoreFile, DbKey: s.db.key,
	})
	passed, err := res.Passed(ctx)
	if err != nil { // the module's error says why, and how to give it a database
		return imageReports{}, fmt.Errorf("scan could not run, nothing was pushed: %s (%s): %w (docs/offline.md)", a.service.Name, platform, err)
	}
	rep := imageReports{sarif: res.Sarif(), scanJSON: res.Report(), vuln: res.Vuln(), sbom: sbom}
	if !passed {
		if rep.failure, err = res.Failure(ctx); err != nil {
			return imageReports{}, err
		}
	}
	if rep.layers, err = res.Layers(ctx); err != nil {
		return imageReports{}, fmt.Errorf("scan %s %s: %w", a.service.Name, platform, err)
	}
	if rep.analyzed, err = res.LayersAnalyzed(ctx); err != nil {
		return imageReports{}, fmt.Errorf("scan %s %s: %w", a.service.Name, platform, err)
	}
	counts, err := res.Findings(ctx)
	if err != nil {
		return imageReports{}, fmt.Errorf("scan %s %s: %w", a.service.Name, platform, err)
	}
	if err := json.Unmarshal([]byte(counts), &rep.findings); err != nil {
		return imageReports{}, fmt.Errorf("scan %s %s: findings %q: %w", a.service.Name, platform, counts, err)
	}
	maps.DeleteFunc(rep.findings, func(_ string, n int) bool { return n == 0 }) // release.json lists what was found
	if err := <-sbomDone; err != nil {
		return imageReports{}, fmt.Errorf("sbom %s %s: %w", a.service.Name, platform, err)
	}
	return rep, nil
}
