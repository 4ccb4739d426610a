package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"dagger/supplychain/internal/dagger"
)

// ScanResult is one image's vulnerability scan: the gate's verdict and the
// reports, which exist whether or not the gate passed.
type ScanResult struct {
	// Whether the image passed the severity gate.
	Passed bool
	// Why it did not pass (empty when passed).
	//
	// The end of the tool's output, naming each package, vulnerability,
	// severity and fixed version that failed the gate.
	Failure string
	// Trivy's JSON report.
	Report *dagger.File
	// SARIF 2.1.0 report, category trivy/<name>/<platform>/.
	//
	// Its runs' automationDetails.id: one code-scanning category per image.
	Sarif *dagger.File
	// The scan as a cosign vulnerability predicate (Trivy's cosign-vuln
	// format), for attest --predicate-type vuln.
	Vuln *dagger.File
	// Vulnerabilities per severity, as a JSON object.
	//
	// E.g. {"CRITICAL":0,"HIGH":1,"LOW":0,"MEDIUM":0,"UNKNOWN":0}.
	Findings string
	// Layers of the image.
	Layers int
	// Layers Trivy had to read; the others' analysis came from the layer
	// cache volume.
	//
	// 0 when every layer was scanned before, e.g. in the previous release of
	// unchanged sources, whose images differ only in labels and dates.
	LayersAnalyzed int
}

// Scan runs the Trivy vulnerability gate on one platform's image.
//
// The image is one platform's of an OCI image layout. A failing gate is a
// result (passed false, with the reports), not an error; an error means the
// scan could not run (no vulnerability database, a platform the layout
// lacks, a bad flag).
//
// Without --trivy-db the database is downloaded into the cache volume
// bot-core-trivy and refreshed at most once a day.
//
// Trivy's analysis of each layer is kept in a cache volume, keyed by the
// layer's diff ID: an image that differs from one scanned before only in
// labels or dates is matched against the database without reading a layer,
// and its reports still describe it.
//
// A scan's result is reused for a day for the same image and options, and
// never across databases the caller tells apart with db-key.
//
// +cache="24h"
func (m *Supplychain) Scan(
	ctx context.Context,
	// OCI image layout; it may hold a multi-platform index.
	layout *dagger.Directory,
	// Platform to pick from the layout, e.g. linux/amd64 or linux/arm64.
	platform string,
	// Service or image name, used in the SARIF category trivy/<name>/<platform>/
	// (trivy/<platform>/ without it).
	// +optional
	name string,
	// Severities that fail the gate, comma-separated, from UNKNOWN, LOW,
	// MEDIUM, HIGH, CRITICAL.
	// +default="HIGH,CRITICAL"
	severity string,
	// Leave out vulnerabilities that have no fixed version yet.
	// +optional
	ignoreUnfixed bool,
	// Trivy vulnerability database to scan with, offline: a directory holding
	// trivy.db and metadata.json. Without it the database is downloaded.
	// +optional
	trivyDb *dagger.Directory,
	// Trivy ignore file (.trivyignore, or .trivyignore.yaml) of
	// vulnerability IDs to leave out.
	// +optional
	trivyignore *dagger.File,
	// OCI repositories to download the database from, tried in order, as
	// for vuln-db (default: Trivy's).
	// +optional
	trivyDbRepository []string,
	// What identifies the database the scan will use, e.g. vuln-db's
	// summary line or an offline database's metadata.json: a scan is
	// reused only while this is the same too. Without it a downloaded
	// database may be up to a day newer than the one a reused result saw.
	// +optional
	dbKey string,
) (*ScanResult, error) {
	category := "trivy/" + platform + "/"
	if name != "" {
		category = "trivy/" + name + "/" + platform + "/"
	}
	c := m.Tools().
		WithMountedDirectory("/image", layout).
		WithMountedCache("/layer-cache", dag.CacheVolume(layerCacheVolume(name, platform)),
			// Trivy holds the cache's database for the whole scan.
			dagger.ContainerWithMountedCacheOpts{Sharing: dagger.CacheSharingModeLocked}).
		WithDirectory("/out", dag.Directory())
	args := []string{botcoreBin, "--json", "scan", "--layout", "/image", "--platform", platform,
		"--layer-cache", "/layer-cache",
		"--severity", severity,
		"--json-report", "/out/scan.json",
		"--sarif", "/out/scan.sarif", "--sarif-category", category,
		"--cosign-vuln", "/out/vuln.json",
		"--findings", "/out/findings.json"}
	if ignoreUnfixed {
		args = append(args, "--ignore-unfixed")
	}
	c, args, err := withDatabase(ctx, c, args, trivyDb, trivyDbRepository, trivyignore)
	if err != nil {
		return nil, err
	}

	scanned := c.WithExec(args, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
	code, err := scanned.ExitCode(ctx)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", platform, err)
	}
	out := scanned.Directory("/out")
	entries, err := out.Entries(ctx)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", platform, err)
	}
	hasFindings := false
	for _, e := range entries {
		hasFindings = hasFindings || e == "findings.json"
	}
	if !hasFindings {
		// No verdict at all: the scan did not run to the gate.
		stderr, _ := scanned.Stderr(ctx)
		hint := ""
		if trivyDb == nil {
			hint = "\nwithout access to Trivy's database registry, pass a database with --trivy-db DIR (trivy.db and metadata.json)"
		}
		return nil, fmt.Errorf("the scan of %s could not run (exit code %d):\n%s%s", platform, code, lastLines(stderr, 40), hint)
	}
	findings, err := out.File("findings.json").Contents(ctx)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", platform, err)
	}
	res := &ScanResult{
		Passed:   code == 0,
		Report:   out.File("scan.json"),
		Sarif:    out.File("scan.sarif"),
		Vuln:     out.File("vuln.json"),
		Findings: strings.TrimSpace(findings),
	}
	summary, err := scanned.Stdout(ctx)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", platform, err)
	}
	var layers struct {
		Layers struct{ Total, Analyzed int }
	}
	if err := json.Unmarshal([]byte(summary), &layers); err != nil {
		return nil, fmt.Errorf("scan %s: the tool's summary %q: %w", platform, lastLines(summary, 3), err)
	}
	res.Layers, res.LayersAnalyzed = layers.Layers.Total, layers.Layers.Analyzed
	if !res.Passed {
		stderr, err := scanned.Stderr(ctx)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", platform, err)
		}
		res.Failure = lastLines(stderr, 40)
	}
	return res, nil
}

// withDatabase gives a scan its vulnerability database (the offline
// directory, else the cache volume it is downloaded into) and its ignore
// file, mounted under its own name: trivy reads a .yaml/.yml one as YAML.
func withDatabase(ctx context.Context, c *dagger.Container, args []string, trivyDb *dagger.Directory, repositories []string, trivyignore *dagger.File) (*dagger.Container, []string, error) {
	if trivyDb != nil {
		c = c.WithMountedDirectory("/trivy-db", trivyDb)
		args = append(args, "--db-dir", "/trivy-db")
	} else {
		c = trivyCache(c, repositories)
		args = append(args, "--cache-dir", "/trivy-cache")
		for _, r := range repositories {
			args = append(args, "--db-repository", r)
		}
	}
	if trivyignore == nil {
		return c, args, nil
	}
	base, err := trivyignore.Name(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("--trivyignore: %w", err)
	}
	if base == "" || strings.Contains(base, "/") {
		base = ".trivyignore"
	}
	return c.WithMountedFile("/ignore/"+base, trivyignore), append(args, "--ignorefile", "/ignore/"+base), nil
}

// layerCacheVolume is Trivy's layer cache for one image name and platform:
// a release's images are scanned at once, and each scan holds its cache for
// its whole run, so one volume each keeps them parallel; the next release
// of that image finds its layers there.
func layerCacheVolume(name, platform string) string {
	if name == "" {
		name = "image"
	}
	return "bot-core-trivy-layers-" + strings.NewReplacer("/", "-", ":", "-").Replace(name+"-"+platform)
}

// trivyVolume is the database cache volume for a list of repositories: one
// per list (a mirror's copy is not Trivy's), so a run checking one mirror
// never takes another's fresh copy for its own.
func trivyVolume(repositories []string) string {
	volume := "bot-core-trivy"
	if len(repositories) > 0 {
		sum := sha256.Sum256([]byte(strings.Join(repositories, "\n")))
		volume += "-" + hex.EncodeToString(sum[:6])
	}
	return volume
}

// trivyCache mounts the database cache that Scan and VulnDb share.
func trivyCache(c *dagger.Container, repositories []string) *dagger.Container {
	// The exec would otherwise be replayed from the engine's cache forever;
	// the date makes it rerun (and refresh the database) once a day.
	return c.WithMountedCache("/trivy-cache", dag.CacheVolume(trivyVolume(repositories))).
		WithEnvVariable("BOTCORE_SCAN_DAY", time.Now().UTC().Format("2006-01-02"))
}

// VulnDb checks for, or fetches, Trivy's vulnerability database in the
// cache Scan downloads into, so that the scans of a release share one fetch
// and a database that cannot be had is known before anything is built.
//
// Returns botcore's summary line.
//
// +cache="session"
func (m *Supplychain) VulnDb(
	ctx context.Context,
	// Only say, in seconds and without downloading, whether the database
	// can be had: fresh in the cache, or served by a repository.
	// +optional
	checkOnly bool,
	// OCI repositories of the database, tried in order (Trivy's
	// --db-repository; default: Trivy's, mirror.gcr.io then ghcr.io).
	// +optional
	repository []string,
	// Services on the caller's machine that serve the repositories, e.g.
	// tcp://127.0.0.1:5000 for a mirror on the loopback: connections to
	// 127.0.0.1:<port> and localhost:<port> go through them.
	// +optional
	tunnel []*dagger.Service,
) (string, error) {
	var via tunnels
	for _, svc := range tunnel {
		var err error
		if via, err = via.add(ctx, svc, nil); err != nil {
			return "", err
		}
	}
	verb := "fetch"
	if checkOnly {
		verb = "check"
	}
	args := []string{botcoreBin, "vuln-db", verb, "--cache-dir", "/trivy-cache"}
	for _, r := range repository {
		args = append(args, "--db-repository", r)
	}
	out, err := via.apply(trivyCache(m.Tools(), repository)).WithExec(args).Stdout(ctx)
	var exe *dagger.ExecError
	if errors.As(err, &exe) {
		return "", fmt.Errorf("%s\nwithout access to Trivy's database registry, pass a mirror with --trivy-db-repository REF, or a database with --trivy-db DIR (trivy.db and metadata.json)",
			lastLines(exe.Stderr, 20))
	}
	return strings.TrimSpace(out), err
}
