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

// gateSummary is the part of botcore gate's gate.json the release reads.
type gateSummary struct {
	Images []struct {
		Name, Platform, Dir string
		Passed              bool
		Failure             string
		Counts              map[string]int
		Layers              struct{ Total, Analyzed int }
	}
}

// Run scans and SBOMs every image in one call of the module's gate: one
// exec of the tool for the whole release.
func (s gateStage) Run(ctx context.Context, r *run) error {
	tool, err := r.tool()
	if err != nil {
		return err
	}
	r.rel.Tool = tool
	if err := s.db.ready(); err != nil {
		return err
	}
	layouts := make([]*dagger.Directory, len(r.arts))
	names := make([]string, len(r.arts))
	for i, a := range r.arts {
		layouts[i], names[i] = a.layout.Dir, a.service.Name
	}
	res := s.tools.Gate(layouts, names, dagger.SupplychainGateOpts{
		Platforms: r.plan.Platforms, Severity: strings.Join(r.plan.Severities, ","), IgnoreUnfixed: r.plan.IgnoreUnfixed,
		TrivyDb: s.db.offline, TrivyDbRepository: s.db.repositories, Trivyignore: s.ignoreFile, DbKey: s.db.key,
	})
	summary, err := res.Summary(ctx)
	if err != nil { // the module's error says why, and how to give it a database
		return fmt.Errorf("the scans could not run, nothing was pushed: %w (docs/offline.md)", err)
	}
	var sum gateSummary
	if err := json.Unmarshal([]byte(summary), &sum); err != nil {
		return fmt.Errorf("the gate's summary: %w", err)
	}
	byImage := map[string]int{}
	for i, im := range sum.Images {
		byImage[im.Name+" "+im.Platform] = i
	}
	reports := res.Reports()
	var failed, reused []string
	for _, a := range r.arts {
		for _, p := range r.plan.Platforms {
			i, ok := byImage[a.service.Name+" "+p]
			if !ok {
				return fmt.Errorf("the gate's summary has no %s (%s)", a.service.Name, p)
			}
			im := sum.Images[i]
			dir := reports.Directory(im.Dir)
			rr := release.ReportsFor(a.service.Name, p)
			rr.Findings = maps.Clone(im.Counts)
			maps.DeleteFunc(rr.Findings, func(_ string, n int) bool { return n == 0 }) // release.json lists what was found
			r.out = r.out.WithFile(rr.SARIF, dir.File("scan.sarif")).WithFile(rr.Scan, dir.File("scan.json")).
				WithFile(rr.SBOM, dir.File("sbom.spdx.json"))
			a.record.Reports[p] = rr
			a.sboms[p] = dir.File("sbom.spdx.json")
			a.vulns[p] = dir.File("vuln.json")
			if !im.Passed {
				failed = append(failed, im.Failure)
			}
			if im.Layers.Total > 0 && im.Layers.Analyzed == 0 {
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
