package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/release"
)

// scanPolicy is build-all's vulnerability gate and where its database comes from.
type scanPolicy struct {
	severities    []string
	ignoreUnfixed bool
	db            *dagger.Directory // nil: download into a cache volume
	ignoreFile    *dagger.File      // the source's .trivyignore, if any
}

var knownSeverities = map[string]bool{"UNKNOWN": true, "LOW": true, "MEDIUM": true, "HIGH": true, "CRITICAL": true}

func parseSeverities(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.ToUpper(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if !knownSeverities[f] {
			return nil, fmt.Errorf("--severity %q: unknown severity %q (use UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL)", s, f)
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--severity is empty: name at least one of LOW, MEDIUM, HIGH, CRITICAL")
	}
	return out, nil
}

func (p scanPolicy) record() *release.ScanPolicy {
	db := "download"
	if p.db != nil {
		db = "directory"
	}
	return &release.ScanPolicy{Severities: p.severities, IgnoreUnfixed: p.ignoreUnfixed, DB: db}
}

// imageReports are one image's scan and SBOM outputs, still in the engine.
type imageReports struct {
	platform              string
	sarif, scanJSON, sbom *dagger.File
	findings              map[string]int
	gateErr               error
}

// fileBase names an image's report files: rust-core-engine_linux-arm64.
func fileBase(service, platform string) string {
	return service + "_" + strings.ReplaceAll(platform, "/", "-")
}

// scanAndSBOM runs the gate and the SBOM for one image (one platform of a
// service's OCI layout). A failed gate is returned in gateErr, not as the
// error, so the caller can still export the reports before stopping.
func (m *BotCore) scanAndSBOM(ctx context.Context, tools *dagger.Container, service, platform string, layout *dagger.Directory, pol scanPolicy) (imageReports, error) {
	c := tools.WithMountedDirectory("/image", layout)
	args := []string{botcoreBin, "scan", "--layout", "/image", "--platform", platform,
		"--severity", strings.Join(pol.severities, ","),
		"--json-report", "/out/scan.json", "--sarif", "/out/scan.sarif"}
	if pol.ignoreUnfixed {
		args = append(args, "--ignore-unfixed")
	}
	if pol.db != nil {
		c = c.WithMountedDirectory("/trivy-db", pol.db)
		args = append(args, "--db-dir", "/trivy-db")
	} else {
		// Dagger would reuse yesterday's scan forever; the date makes an
		// online scan rerun (and refresh the database) once a day.
		c = c.WithMountedCache("/trivy-cache", dag.CacheVolume("bot-core-trivy")).
			WithEnvVariable("BOTCORE_SCAN_DAY", time.Now().UTC().Format("2006-01-02"))
		args = append(args, "--cache-dir", "/trivy-cache")
	}
	if pol.ignoreFile != nil {
		c = c.WithMountedFile("/work/.trivyignore", pol.ignoreFile)
		args = append(args, "--ignorefile", "/work/.trivyignore")
	}
	scanned := c.WithExec(args, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
	code, err := scanned.ExitCode(ctx)
	if err != nil {
		return imageReports{}, fmt.Errorf("scan %s %s: %w", service, platform, err)
	}
	rep := imageReports{platform: platform, scanJSON: scanned.File("/out/scan.json")}
	if code != 0 {
		stderr, _ := scanned.Stderr(ctx)
		rep.gateErr = fmt.Errorf("%s (%s): %s", service, platform, lastLines(stderr, 40))
	}
	if rep.findings, err = countFindings(ctx, rep.scanJSON, pol.severities); err != nil {
		if rep.gateErr != nil { // the scan could not run at all: no gate verdict
			hint := ""
			if pol.db == nil {
				hint = "\nwithout access to Trivy's database registry, give build-all one with --trivy-db DIR (docs/offline.md)"
			}
			return imageReports{}, fmt.Errorf("scan could not run, nothing was pushed: %w%s", rep.gateErr, hint)
		}
		return imageReports{}, fmt.Errorf("scan %s %s: %w", service, platform, err)
	}
	if rep.sarif, err = categorizeSARIF(ctx, scanned.File("/out/scan.sarif"), service, platform); err != nil {
		return imageReports{}, fmt.Errorf("scan %s %s: %w", service, platform, err)
	}
	rep.sbom = tools.WithMountedDirectory("/image", layout).
		WithExec([]string{botcoreBin, "sbom", "--layout", "/image", "--platform", platform, "--name", service, "--output", "/out/sbom.spdx.json"}).
		File("/out/sbom.spdx.json")
	if _, err := rep.sbom.Sync(ctx); err != nil {
		return imageReports{}, fmt.Errorf("sbom %s %s: %w", service, platform, err)
	}
	return rep, nil
}

// countFindings tallies the report's vulnerabilities per severity (trivy
// leaves ignored ones out of the report).
func countFindings(ctx context.Context, report *dagger.File, _ []string) (map[string]int, error) {
	js, err := report.Contents(ctx)
	if err != nil {
		return nil, err
	}
	var r struct {
		Results []struct {
			Vulnerabilities []struct{ Severity string }
		}
	}
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		return nil, fmt.Errorf("trivy report: %w", err)
	}
	counts := map[string]int{}
	for _, res := range r.Results {
		for _, v := range res.Vulnerabilities {
			counts[v.Severity]++
		}
	}
	return counts, nil
}

// categorizeSARIF gives every run an automationDetails id per image: code
// scanning keeps one analysis per id, so six uploads from one tool do not
// replace each other.
func categorizeSARIF(ctx context.Context, f *dagger.File, service, platform string) (*dagger.File, error) {
	js, err := f.Contents(ctx)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		return nil, fmt.Errorf("SARIF: %w", err)
	}
	runs, _ := doc["runs"].([]any)
	for _, r := range runs {
		if run, ok := r.(map[string]any); ok {
			run["automationDetails"] = map[string]any{"id": "trivy/" + service + "/" + platform + "/"}
		}
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return dag.Directory().WithNewFile("scan.sarif", string(out)).File("scan.sarif"), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// signPolicy says whether and how build-all signs what it published.
type signPolicy struct {
	key, keyPassword         *dagger.Secret
	idToken                  *dagger.Secret
	requestURL, requestToken *dagger.Secret
	fulcioURL, rekorURL      string
	noTlog, noSCT            bool
}

func (p signPolicy) mode() string {
	switch {
	case p.key != nil:
		return "key"
	case p.idToken != nil || p.requestURL != nil:
		return "keyless"
	}
	return ""
}

func (p signPolicy) validate() error {
	if p.key != nil && (p.idToken != nil || p.requestURL != nil) {
		return fmt.Errorf("give either --cosign-key (key-based signing) or an OIDC token (keyless), not both")
	}
	if (p.requestURL == nil) != (p.requestToken == nil) {
		return fmt.Errorf("--oidc-request-url and --oidc-request-token go together (GitHub Actions passes both)")
	}
	if p.idToken != nil && p.requestURL != nil {
		return fmt.Errorf("give either --oidc-token or --oidc-request-url/--oidc-request-token, not both")
	}
	return nil
}

func (p signPolicy) record() *release.Signing {
	s := &release.Signing{Mode: p.mode(), Tlog: !p.noTlog, SCT: !p.noSCT}
	if s.Mode == "keyless" {
		s.FulcioURL = p.fulcioURL
	}
	if s.Tlog {
		s.RekorURL = p.rekorURL
	}
	return s
}

// signTarget is one published service: its index, its platform manifests
// and each platform's SBOM to attest.
type signTarget struct {
	service   string
	repo      string
	index     string
	platforms map[string]string // platform -> manifest digest
	sboms     map[string]*dagger.File
}

// reach wires the tool container to services on the caller's machine:
// each tunnel gets an alias, and botcore's --connect-to (curl semantics)
// sends connections for the original host:port through it, so references,
// URLs and TLS names stay what the user gave.
type reach struct {
	bindings map[string]*dagger.Service
	connect  []string
}

func (r *reach) add(ctx context.Context, alias string, svc *dagger.Service, hosts ...string) error {
	if _, err := svc.Start(ctx); err != nil {
		return fmt.Errorf("tunnel %s: %w", alias, err)
	}
	endpoint, err := svc.Endpoint(ctx)
	if err != nil {
		return fmt.Errorf("tunnel %s: %w", alias, err)
	}
	_, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return fmt.Errorf("tunnel %s: endpoint %q: %w", alias, endpoint, err)
	}
	if len(hosts) == 0 { // a host service: it answered on the caller's loopback
		hosts = []string{"127.0.0.1:" + port, "localhost:" + port}
	}
	if r.bindings == nil {
		r.bindings = map[string]*dagger.Service{}
	}
	r.bindings[alias] = svc
	for _, h := range hosts {
		r.connect = append(r.connect, h+":"+alias+":"+port)
	}
	return nil
}

func (r *reach) apply(c *dagger.Container) *dagger.Container {
	for alias, svc := range r.bindings {
		c = c.WithServiceBinding(alias, svc)
	}
	if len(r.connect) > 0 {
		c = c.WithEnvVariable("BOTCORE_CONNECT_TO", strings.Join(r.connect, ","))
	}
	return c
}

// signAll signs every index and platform manifest by digest and attests each
// platform's SBOM. It runs before any tag moves: a failure leaves the release
// unpublished under its tags.
func (m *BotCore) signAll(ctx context.Context, tools *dagger.Container, pol signPolicy, auth registryAuth, via reach, targets []signTarget) error {
	c := via.apply(tools).
		// Each run must really sign: Dagger would otherwise replay a cached
		// exec whose signatures went to another registry (or were deleted).
		WithEnvVariable("BOTCORE_RUN", time.Now().UTC().Format(time.RFC3339Nano))
	c = auth.apply(c)
	args := []string{"--fulcio-url", pol.fulcioURL, "--rekor-url", pol.rekorURL}
	if pol.noTlog {
		args = append(args, "--tlog-upload=false")
	}
	if pol.noSCT {
		args = append(args, "--insecure-ignore-sct")
	}
	switch {
	case pol.key != nil:
		c = c.WithSecretVariable("COSIGN_KEY", pol.key)
		if pol.keyPassword != nil {
			c = c.WithSecretVariable("COSIGN_PASSWORD", pol.keyPassword)
		}
		args = append(args, "--key", "env:COSIGN_KEY")
	case pol.idToken != nil:
		c = c.WithSecretVariable("SIGSTORE_ID_TOKEN", pol.idToken)
	default:
		c = c.WithSecretVariable("ACTIONS_ID_TOKEN_REQUEST_URL", pol.requestURL).
			WithSecretVariable("ACTIONS_ID_TOKEN_REQUEST_TOKEN", pol.requestToken)
	}
	for _, t := range targets {
		refs := []string{t.repo + "@" + t.index}
		for _, p := range sortedKeys(t.platforms) {
			refs = append(refs, t.repo+"@"+t.platforms[p])
		}
		c = c.WithExec(append(append([]string{botcoreBin, "sign"}, args...), refs...))
		for _, p := range sortedKeys(t.platforms) {
			pred := "/sbom/" + fileBase(t.service, p) + ".spdx.json"
			c = c.WithMountedFile(pred, t.sboms[p]).
				WithExec(append(append([]string{botcoreBin, "attest", "--type", "spdxjson", "--predicate", pred}, args...), t.repo+"@"+t.platforms[p]))
		}
	}
	if _, err := c.Sync(ctx); err != nil {
		return fmt.Errorf("signing failed, no tag was moved: %w", err)
	}
	return nil
}

// registryAuth hands the registry credentials to botcore the way its
// keychain reads them: the password only ever as a secret variable.
type registryAuth struct {
	registry, username string
	password           *dagger.Secret
}

func (a registryAuth) apply(c *dagger.Container) *dagger.Container {
	c = c.WithEnvVariable("DOCKER_REGISTRY", a.registry)
	if a.password != nil {
		c = c.WithEnvVariable("DOCKER_USERNAME", a.username).
			WithSecretVariable("DOCKER_PASSWORD", a.password)
	}
	return c
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// cosignRef is where cosign stores a digest's signatures (.sig) or
// attestations (.att) in the registry: a tag derived from the digest.
func cosignRef(repo, digest, suffix string) string {
	return repo + ":" + strings.Replace(digest, ":", "-", 1) + suffix
}
