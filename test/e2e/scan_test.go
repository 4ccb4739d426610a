package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/owenrumney/go-sarif/v2/sarif"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"

	"github.com/bot-core/delivery/pipelines/release"
	"github.com/bot-core/delivery/test/trivydbtest"
)

var (
	dbOnce sync.Once
	dbDir  string
	dbErr  error
)

// offlineDB is a real Trivy database whose only advisory names a package no
// image has, written once per test binary: every build-all in these tests
// scans offline against it.
func offlineDB(t *testing.T) string {
	t.Helper()
	dbOnce.Do(func() {
		if dbDir, dbErr = os.MkdirTemp("", "trivy-db-"); dbErr == nil {
			dbErr = trivydbtest.Write(dbDir, trivydbtest.Advisory{ID: "CVE-2099-9999", Package: "botcore-test-absent",
				Severity: "CRITICAL", Ecosystem: trivydbtest.Npm, Vulnerable: []string{"<1.0.0"}})
		}
	})
	if dbErr != nil {
		t.Fatal(dbErr)
	}
	return dbDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, dir := range []string{dbDir, toolDir} {
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	os.Exit(code)
}

// The dashboard locks next 15.5.29 and react 19.3.1 (package-lock.json);
// these advisories are invented for them.
var (
	nextCritical = trivydbtest.Advisory{ID: "CVE-2099-0001", Package: "next", Severity: "CRITICAL", Title: "test advisory for next",
		Ecosystem: trivydbtest.Npm, Vulnerable: []string{"<15.5.30"}, Patched: []string{"15.5.30"}}
	reactHigh = trivydbtest.Advisory{ID: "CVE-2099-0002", Package: "react", Severity: "HIGH", Title: "test advisory for react",
		Ecosystem: trivydbtest.Npm, Vulnerable: []string{"<19.3.2"}, Patched: []string{"19.3.2"}}
)

func writeDB(t *testing.T, adv ...trivydbtest.Advisory) string {
	t.Helper()
	dir := t.TempDir()
	if err := trivydbtest.Write(dir, adv...); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestVulnerabilityGate runs the real Trivy scan of the dashboard image
// inside the pipeline against databases holding advisories for packages the
// image really contains.
func TestVulnerabilityGate(t *testing.T) {
	reg := startRegistry(t)
	prefix := reg + "/gate"
	one := []string{"--services", "nextjs-ui-dashboard", "--platforms", "linux/amd64", "--version", "v2.0.0",
		"--registry", prefix, "--registry-service", "tcp://" + reg, "--allow-unsigned"}
	critical := writeDB(t, nextCritical)

	t.Run("a CRITICAL finding stops the release before publish, naming the CVE", func(t *testing.T) {
		stderr, err := daggerCallErr(t, repoRoot(t), append([]string{"build-all", "--trivy-db", critical}, one...)...)
		if err == nil {
			t.Fatal("build-all passed the gate with a CRITICAL advisory for next 15.5.29")
		}
		for _, want := range []string{"vulnerability gate", "nothing was pushed", "CVE-2099-0001", "next", "15.5.29", "CRITICAL", "15.5.30"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("the error does not mention %q:\n%s", want, tail(stderr, 40))
			}
		}
		repo, _ := name.NewRepository(prefix + "/nextjs-ui-dashboard")
		if tags, err := remote.List(repo); err == nil && len(tags) > 0 {
			t.Errorf("the failed release pushed tags %v", tags)
		}
	})

	// What the pull-request job runs: the failed gate's SARIF still comes out
	// for code scanning, and check-release gives the job its verdict.
	t.Run("with --record-failure a failed gate exports its reports and check-release fails", func(t *testing.T) {
		out := t.TempDir()
		daggerCall(t, append(append([]string{"build-all", "--trivy-db", critical, "--build-only", "--record-failure"}, one...), "export", "--path", out)...)
		rel := readRelease(t, out)
		if rel.State != release.StateBuilt || rel.Published || !strings.Contains(rel.Error, "CVE-2099-0001") ||
			rel.Scan == nil || len(rel.Scan.Failed) != 1 || !strings.HasPrefix(rel.Scan.Failed[0], "nextjs-ui-dashboard (linux/amd64)") {
			t.Errorf("release.json state %q published %v error %q scan %+v; want built, the gate's failure recorded", rel.State, rel.Published, rel.Error, rel.Scan)
		}
		checkSARIF(t, filepath.Join(out, rel.Services[0].Reports["linux/amd64"].SARIF), "CVE-2099-0001", "nextjs-ui-dashboard")
		stderr, err := daggerCallErr(t, repoRoot(t), "check-release", "--record", filepath.Join(out, "release.json"))
		if err == nil || !strings.Contains(stderr, "release v2.0.0 failed (state built): vulnerability gate") {
			t.Errorf("check-release: err %v\n%s", err, tail(stderr, 20))
		}
	})

	t.Run("the CVE listed in the source's .trivyignore passes, with SARIF and SBOM exported", func(t *testing.T) {
		src := sourceCopy(t)
		if err := os.WriteFile(filepath.Join(src, ".trivyignore"), []byte("# accepted for the test\nCVE-2099-0001\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		daggerCall(t, append(append([]string{"--source", src, "build-all", "--trivy-db", critical}, one...), "export", "--path", out)...)
		rel := readRelease(t, out)
		if !rel.Published || rel.Scan == nil || rel.Scan.DB != "directory" {
			t.Fatalf("release.json: published=%v scan=%+v", rel.Published, rel.Scan)
		}
		rep := rel.Services[0].Reports["linux/amd64"]
		if rep.Findings["CRITICAL"] != 0 {
			t.Errorf("the ignored CVE is still counted: %v", rep.Findings)
		}
		checkSBOM(t, filepath.Join(out, rep.SBOM), "next", "15.5.29", "react", "19.3.1")
		checkSARIF(t, filepath.Join(out, rep.SARIF), "", "nextjs-ui-dashboard")
	})

	high := writeDB(t, reactHigh)
	t.Run("a HIGH finding fails the default gate and passes --severity CRITICAL", func(t *testing.T) {
		args := append([]string{"build-all", "--trivy-db", high, "--registry", prefix + "-high", "--registry-service", "tcp://" + reg, "--allow-unsigned"}, one[:4]...)
		stderr, err := daggerCallErr(t, repoRoot(t), append(args, "--version", "v2.0.0")...)
		if err == nil || !strings.Contains(stderr, "CVE-2099-0002") {
			t.Fatalf("the default gate (HIGH,CRITICAL) did not stop on CVE-2099-0002: err=%v\n%s", err, tail(stderr, 30))
		}
		out := t.TempDir()
		daggerCall(t, append(append(args, "--version", "v2.0.0", "--build-only", "--severity", "CRITICAL"), "export", "--path", out)...)
		rel := readRelease(t, out)
		rep := rel.Services[0].Reports["linux/amd64"]
		if rep.Findings["HIGH"] != 1 {
			t.Errorf("findings %v, want the HIGH react advisory reported though it passed", rep.Findings)
		}
		checkSARIF(t, filepath.Join(out, rep.SARIF), "CVE-2099-0002", "nextjs-ui-dashboard")
	})
}

// checkSBOM validates an SPDX 2.3 JSON document with spdx/tools-golang and
// looks for name/version pairs among its packages.
func checkSBOM(t *testing.T, path string, nameVersions ...string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := spdxjson.Read(f)
	if err != nil {
		t.Fatalf("%s is not SPDX JSON: %v", path, err)
	}
	if doc.SPDXVersion != spdx.Version {
		t.Errorf("%s: SPDX version %q, want %q", path, doc.SPDXVersion, spdx.Version)
	}
	have := map[string]bool{}
	for _, p := range doc.Packages {
		have[p.PackageName+"@"+p.PackageVersion] = true
	}
	for i := 0; i+1 < len(nameVersions); i += 2 {
		if !have[nameVersions[i]+"@"+nameVersions[i+1]] {
			t.Errorf("%s lists no package %s %s (%d packages)", path, nameVersions[i], nameVersions[i+1], len(doc.Packages))
		}
	}
}

// checkSARIF checks a SARIF 2.1.0 log; with a rule id, that the rule exists
// and a result for it has a location.
func checkSARIF(t *testing.T, path, rule, category string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	log, err := sarif.FromBytes(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if log.Version != "2.1.0" || len(log.Runs) == 0 {
		t.Fatalf("%s: version %q with %d runs, want SARIF 2.1.0", path, log.Version, len(log.Runs))
	}
	run := log.Runs[0]
	if run.AutomationDetails == nil || !strings.Contains(deref(run.AutomationDetails.ID), category) {
		t.Errorf("%s: automationDetails %+v does not name %s", path, run.AutomationDetails, category)
	}
	if rule == "" {
		return
	}
	found := false
	if run.Tool.Driver != nil {
		for _, r := range run.Tool.Driver.Rules {
			found = found || r.ID == rule
		}
	}
	if !found {
		t.Errorf("%s: no rule %s", path, rule)
	}
	for _, r := range run.Results {
		if deref(r.RuleID) == rule && len(r.Locations) > 0 {
			return
		}
	}
	t.Errorf("%s: no result with a location for %s", path, rule)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
