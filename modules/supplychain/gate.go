package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"dagger/supplychain/internal/dagger"
)

// GateResult is a release's vulnerability gate and SBOMs: every image
// scanned and SBOM'd by one botcore process.
type GateResult struct {
	// Whether every image passed the severity gate.
	Passed bool
	// The reports: NAME/OS-ARCH/ holds scan.json (Trivy's JSON report),
	// scan.sarif (category trivy/NAME/OS/ARCH/), vuln.json (cosign
	// vulnerability predicate), findings.json (counts per severity) and
	// sbom.spdx.json (SPDX 2.3, named NAME); gate.json sums them up.
	Reports *dagger.Directory
	// gate.json: per image its platform, digest, verdict, the findings
	// that failed the gate, counts, the layers read and whether the SBOM
	// came from the catalog of the same layers.
	Summary string
	// Why the gate failed: the findings that failed it, per image (empty
	// when passed).
	Failure string
}

// Gate scans (Trivy) and SBOMs (Syft, SPDX 2.3 JSON) every platform of
// several OCI image layouts in one exec, for a release that would otherwise
// start a scan and an SBOM per image, each paying the tool's start.
//
// As with scan and sbom, the analysis of each layer and Syft's catalogs are
// kept in cache volumes, so an image whose layers were seen before (in this
// run or an earlier one) is matched against the database and described
// without reading a layer; the layer cache is shared by every image, and
// one gate at a time holds it. A failing gate is a result (passed false,
// with the reports); an error means a scan or SBOM could not run.
//
// A result is reused for a day for the same layouts and options, and never
// across databases the caller tells apart with db-key.
//
// +cache="24h"
func (m *Supplychain) Gate(
	ctx context.Context,
	// OCI image layouts, each of which may hold a multi-platform index.
	layouts []*dagger.Directory,
	// One name per layout: the directory of its reports, its SBOM's name
	// and its SARIF category.
	names []string,
	// Platforms to scan in every layout.
	// +default=["linux/amd64"]
	platforms []string,
	// Severities that fail the gate, comma-separated, from UNKNOWN, LOW,
	// MEDIUM, HIGH, CRITICAL.
	// +default="HIGH,CRITICAL"
	severity string,
	// Leave out vulnerabilities that have no fixed version yet.
	// +optional
	ignoreUnfixed bool,
	// Trivy vulnerability database to scan with, offline: a directory
	// holding trivy.db and metadata.json. Without it the database is
	// downloaded (or taken fresh from the cache vuln-db fetched it into).
	// +optional
	trivyDb *dagger.Directory,
	// Trivy ignore file (.trivyignore, or .trivyignore.yaml).
	// +optional
	trivyignore *dagger.File,
	// OCI repositories to download the database from, tried in order.
	// +optional
	trivyDbRepository []string,
	// What identifies the database, as for scan: a result is reused only
	// while this is the same too.
	// +optional
	dbKey string,
) (*GateResult, error) {
	if len(layouts) == 0 || len(layouts) != len(names) {
		return nil, fmt.Errorf("gate: give one name per layout (%d layouts, %d names)", len(layouts), len(names))
	}
	if i := slices.IndexFunc(names, func(n string) bool { return n == "" || strings.ContainsAny(n, "/=") }); i >= 0 {
		return nil, fmt.Errorf("gate: name %q: a name is a directory of the reports, without / or =", names[i])
	}
	c := m.Tools().
		WithMountedCache("/layer-cache", dag.CacheVolume("bot-core-trivy-layers"),
			// Trivy holds the layer cache's database while it scans.
			dagger.ContainerWithMountedCacheOpts{Sharing: dagger.CacheSharingModeLocked}).
		WithMountedCache("/catalogs", dag.CacheVolume("bot-core-syft-catalogs")).
		WithDirectory("/out", dag.Directory())
	args := []string{botcoreBin, "gate", "--out", "/out", "--platform", strings.Join(platforms, ","),
		"--severity", severity, "--layer-cache", "/layer-cache", "--catalog-cache", "/catalogs"}
	if ignoreUnfixed {
		args = append(args, "--ignore-unfixed")
	}
	c, args, err := withDatabase(ctx, c, args, trivyDb, trivyDbRepository, trivyignore)
	if err != nil {
		return nil, err
	}
	for i, l := range layouts {
		c = c.WithMountedDirectory("/images/"+names[i], l)
		args = append(args, names[i]+"=/images/"+names[i])
	}

	ran := c.WithExec(args, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
	code, err := ran.ExitCode(ctx)
	if err != nil {
		return nil, fmt.Errorf("gate: %w", err)
	}
	out := ran.Directory("/out")
	summary, err := out.File("gate.json").Contents(ctx)
	if err != nil {
		// No summary: some scan or SBOM did not run to the end.
		stderr, _ := ran.Stderr(ctx)
		hint := ""
		if trivyDb == nil {
			hint = "\nwithout access to Trivy's database registry, pass a database with --trivy-db DIR (trivy.db and metadata.json)"
		}
		return nil, fmt.Errorf("the scans could not run (exit code %d):\n%s%s", code, lastLines(stderr, 40), hint)
	}
	res := &GateResult{Passed: code == 0, Reports: out, Summary: summary}
	if !res.Passed {
		stderr, err := ran.Stderr(ctx)
		if err != nil {
			return nil, fmt.Errorf("gate: %w", err)
		}
		res.Failure = lastLines(stderr, 60)
	}
	return res, nil
}
