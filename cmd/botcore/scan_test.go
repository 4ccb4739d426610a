package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/owenrumney/go-sarif/v2/sarif"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aquasecurity/trivy-db/pkg/metadata"
	"github.com/aquasecurity/trivy/pkg/types"
	"github.com/bot-core/delivery/cmd/botcore/internal/scan"
	"github.com/bot-core/delivery/pipelines/registry/registrytest"
	"github.com/bot-core/delivery/test/trivydbtest"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The test images are a Debian 13 image with one dpkg package (source
// "example"), a Next.js app's node_modules, as the nextjs-ui-dashboard
// image has them, and an installed Python distribution (dist-info); the
// arm64 image has the fixed next.
const (
	testRepo    = "registry.example/bot/nextjs-ui-dashboard"
	testVersion = "v1.2.3"

	cveNext       = "CVE-2099-0001" // CRITICAL, next <15.5.30
	cveDebFixed   = "CVE-2099-0002" // HIGH, example < 1.2-1
	cveDebUnfixed = "CVE-2099-0003" // HIGH, example, no fix
	cveReact      = "CVE-2099-0004" // MEDIUM, react <19.1.1
	cveRequests   = "CVE-2099-0006" // LOW, PyPI requests <2.32.0
)

// pyMetadata is where an installed Python distribution keeps its metadata.
const pyMetadata = "usr/local/lib/python3.13/site-packages/requests-2.31.0.dist-info/METADATA"

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
var arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}

// testAdvisories are what the test DB holds: one per CVE above, plus one for
// a package the images do not have.
var testAdvisories = []trivydbtest.Advisory{
	{ID: cveNext, Package: "next", Severity: "CRITICAL", Title: "next: test advisory", Ecosystem: trivydbtest.Npm,
		Vulnerable: []string{">=15.0.0, <15.5.30"}, Patched: []string{"15.5.30"}},
	{ID: cveDebFixed, Package: "example", Severity: "HIGH", Title: "example: fixed test advisory", Debian: "13", Fixed: "1.2-1"},
	{ID: cveDebUnfixed, Package: "example", Severity: "HIGH", Title: "example: open test advisory", Debian: "13"},
	{ID: cveReact, Package: "react", Severity: "MEDIUM", Title: "react: test advisory", Ecosystem: trivydbtest.Npm,
		Vulnerable: []string{">=19.0.0, <19.1.1"}, Patched: []string{"19.1.1"}},
	{ID: cveRequests, Package: "requests", Severity: "LOW", Title: "requests: test advisory", Ecosystem: trivydbtest.PyPI,
		Vulnerable: []string{"<2.32.0"}, Patched: []string{"2.32.0"}},
	{ID: "CVE-2099-0005", Package: "left-pad", Severity: "CRITICAL", Ecosystem: trivydbtest.Npm,
		Vulnerable: []string{"<2.0.0"}, Patched: []string{"2.0.0"}},
}

func appFiles(nextVersion string) map[string]string {
	return map[string]string{
		"etc/debian_version": "13.1\n",
		"etc/os-release": `PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
ID=debian
`,
		"var/lib/dpkg/status": `Package: libexample1
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 100
Maintainer: Test <test@example.com>
Architecture: amd64
Source: example
Version: 1.0-1
Description: example library for tests
 Used by botcore's scan and sbom tests.

`,
		"app/node_modules/next/package.json":  fmt.Sprintf(`{"name": "next", "version": %q, "license": "MIT"}`, nextVersion),
		"app/node_modules/react/package.json": `{"name": "react", "version": "19.1.0", "license": "MIT"}`,
		pyMetadata:                            "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache-2.0\n",
	}
}

// testImage builds a one-layer OCI image of platform with files.
func testImage(t *testing.T, p v1.Platform, files map[string]string) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	dirs := map[string]bool{}
	for _, n := range names {
		for d := filepath.Dir(n); d != "."; d = filepath.Dir(d) {
			dirs[d+"/"] = true
		}
	}
	var dirList []string
	for d := range dirs {
		dirList = append(dirList, d)
	}
	slices.Sort(dirList)
	mtime := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, d := range dirList {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: mtime}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(ggcrtypes.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.MediaType(mutate.ConfigMediaType(empty.Image, ggcrtypes.OCIConfigJSON), ggcrtypes.OCIManifestSchema1)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: mtime}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.WorkingDir = "/app"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// testIndex is the two-platform release index: amd64 with next 15.5.29,
// arm64 with next 15.5.30.
func testIndex(t *testing.T) v1.ImageIndex {
	t.Helper()
	a := testImage(t, amd64, appFiles("15.5.29"))
	b := testImage(t, arm64, appFiles("15.5.30"))
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, ggcrtypes.OCIImageIndex),
		mutate.IndexAddendum{Add: a, Descriptor: v1.Descriptor{Platform: &amd64}},
		mutate.IndexAddendum{Add: b, Descriptor: v1.Descriptor{Platform: &arm64}})
}

// fixture is what the scan and sbom tests read.
type fixture struct {
	layout  string // two-platform OCI layout, as botcore pull writes it
	tarball string // docker save tarball of the amd64 image
	db      string // trivy DB directory with testAdvisories
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	f := fixture{
		layout:  filepath.Join(dir, "images", "nextjs-ui-dashboard"),
		tarball: filepath.Join(dir, "nextjs-ui-dashboard.tar"),
		db:      filepath.Join(dir, "trivy-db"),
	}
	idx := testIndex(t)
	p, err := layout.Write(f.layout, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		annotationRefName:       testVersion,
		annotationContainerdRef: testRepo + ":" + testVersion,
	})); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(testRepo + ":" + testVersion)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(f.tarball, tag, testImage(t, amd64, appFiles("15.5.29"))); err != nil {
		t.Fatal(err)
	}
	if err := trivydbtest.Write(f.db, testAdvisories...); err != nil {
		t.Fatal(err)
	}
	return f
}

// lastLine is the last line of s (the error, after progress lines).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// gateLines are the findings the gate error lists.
func gateLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "  ") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

const (
	lineNext       = "next 15.5.29: " + cveNext + " (CRITICAL), fixed in 15.5.30"
	lineDebFixed   = "libexample1 1.0-1: " + cveDebFixed + " (HIGH), fixed in 1.2-1"
	lineDebUnfixed = "libexample1 1.0-1: " + cveDebUnfixed + " (HIGH), no fix"
	lineReact      = "react 19.1.0: " + cveReact + " (MEDIUM), fixed in 19.1.1"
	lineRequests   = "requests 2.31.0: " + cveRequests + " (LOW), fixed in 2.32.0"
)

func TestScanLayout(t *testing.T) {
	f := newFixture(t)
	work := t.TempDir()
	t.Chdir(work) // no .trivyignore of the repository gets in
	env := map[string]string{"HOME": t.TempDir()}
	ignore := func(t *testing.T, ids ...string) string {
		p := filepath.Join(t.TempDir(), ".trivyignore")
		if err := os.WriteFile(p, []byte("# accepted for the test\n"+strings.Join(ids, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("default platform fails on HIGH and CRITICAL, reports written", func(t *testing.T) {
		jsonPath := filepath.Join(work, "reports", "trivy.json")
		sarifPath := filepath.Join(work, "reports", "trivy.sarif")
		r := botcore(t, env, "", "scan", "--layout", f.layout, "--db-dir", f.db, "--json-report", jsonPath, "--sarif", sarifPath)
		if r.code != 1 {
			t.Fatalf("want exit 1: %s", r)
		}
		want := []string{lineNext, lineDebFixed, lineDebUnfixed}
		if got := gateLines(r.stderr); !slices.Equal(got, want) {
			t.Errorf("gate lists %q, want %q\n%s", got, want, r)
		}
		if !strings.Contains(r.stderr, "botcore: "+f.layout+" (linux/amd64) has 3 vulnerabilities at HIGH,CRITICAL:") ||
			!strings.Contains(r.stderr, "list an ID that does not apply, with a reason, in .trivyignore") {
			t.Errorf("gate error: %s", r)
		}
		for _, want := range []string{"CRITICAL  " + cveNext, "next", "15.5.29", "15.5.30", "app/node_modules/next/package.json",
			"MEDIUM    " + cveReact, "no fix", "LOW       " + cveRequests, pyMetadata,
			"total 5: CRITICAL 1, HIGH 2, MEDIUM 1, LOW 1, UNKNOWN 0"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("summary lacks %q:\n%s", want, r.stdout)
			}
		}

		// Trivy's JSON report parses into its own type.
		b, err := os.ReadFile(jsonPath)
		if err != nil {
			t.Fatal(err)
		}
		var rep types.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatalf("JSON report: %v", err)
		}
		// The layout's ref annotations name the image in the report.
		if rep.SchemaVersion != 2 || rep.ArtifactType != "container_image" || rep.ArtifactName != testRepo+":"+testVersion ||
			rep.Metadata.OS == nil || rep.Metadata.OS.Family != "debian" || rep.Metadata.OS.Name != "13.1" {
			t.Errorf("report header: schema %d type %s name %s os %+v", rep.SchemaVersion, rep.ArtifactType, rep.ArtifactName, rep.Metadata.OS)
		}
		found := map[string]types.DetectedVulnerability{}
		for _, res := range rep.Results {
			for _, v := range res.Vulnerabilities {
				found[v.VulnerabilityID] = v
			}
		}
		if len(found) != 5 {
			t.Errorf("report has %d vulnerabilities, want 5: %v", len(found), found)
		}
		v := found[cveNext]
		if v.PkgName != "next" || v.InstalledVersion != "15.5.29" || v.FixedVersion != "15.5.30" || v.Severity != "CRITICAL" ||
			v.PkgPath != "app/node_modules/next/package.json" {
			t.Errorf("%s in the report: %+v", cveNext, v)
		}
		if v := found[cveDebUnfixed]; v.PkgName != "libexample1" || v.FixedVersion != "" || v.Status.String() != "affected" {
			t.Errorf("%s in the report: %+v", cveDebUnfixed, v)
		}

		// SARIF 2.1.0 from trivy's writer: a rule per CVE, results with a
		// location.
		b, err = os.ReadFile(sarifPath)
		if err != nil {
			t.Fatal(err)
		}
		report, err := sarif.FromBytes(b)
		if err != nil {
			t.Fatalf("SARIF: %v", err)
		}
		if report.Version != "2.1.0" || len(report.Runs) != 1 || report.Runs[0].Tool.Driver == nil || report.Runs[0].Tool.Driver.Name != "Trivy" {
			t.Fatalf("SARIF header: version %q, %d runs", report.Version, len(report.Runs))
		}
		var rules []string
		for _, r := range report.Runs[0].Tool.Driver.Rules {
			rules = append(rules, r.ID)
		}
		if !slices.Contains(rules, cveNext) {
			t.Errorf("SARIF rules %v lack %s", rules, cveNext)
		}
		var located bool
		for _, res := range report.Runs[0].Results {
			if deref(res.RuleID) == cveNext && deref(res.Level) == "error" && len(res.Locations) > 0 &&
				res.Locations[0].PhysicalLocation != nil && res.Locations[0].PhysicalLocation.ArtifactLocation != nil &&
				deref(res.Locations[0].PhysicalLocation.ArtifactLocation.URI) != "" {
				located = true
			}
		}
		if !located {
			t.Errorf("SARIF has no located error result for %s:\n%s", cveNext, b)
		}
	})

	t.Run("SARIF category and findings counts, written when the gate fails", func(t *testing.T) {
		out := t.TempDir()
		const category = "trivy/nextjs-ui-dashboard/linux-amd64/"
		ignoreFile := ignore(t, cveNext)
		r := botcore(t, env, "", "scan", "--layout", f.layout, "--db-dir", f.db, "--ignorefile", ignoreFile,
			"--json-report", out+"/trivy.json", "--sarif", out+"/trivy.sarif", "--sarif-category", category, "--findings", out+"/findings.json",
			"--cosign-vuln", out+"/vuln.json")
		if got := gateLines(r.stderr); r.code != 1 || !slices.Equal(got, []string{lineDebFixed, lineDebUnfixed}) {
			t.Fatalf("gate %q\n%s", got, r)
		}

		var rep types.Report
		if b, err := os.ReadFile(out + "/trivy.json"); err != nil || json.Unmarshal(b, &rep) != nil {
			t.Fatalf("JSON report: %v", err)
		}
		inReport := map[string]int{}
		for _, res := range rep.Results {
			for _, v := range res.Vulnerabilities {
				inReport[v.Severity]++
			}
		}

		// The counts are the JSON report's, over all five severities; the
		// ignored CRITICAL is in neither.
		b, err := os.ReadFile(out + "/findings.json")
		if err != nil {
			t.Fatal(err)
		}
		var counts map[string]int
		if err := json.Unmarshal(b, &counts); err != nil {
			t.Fatalf("findings file: %v\n%s", err, b)
		}
		want := map[string]int{"CRITICAL": 0, "HIGH": 2, "MEDIUM": 1, "LOW": 1, "UNKNOWN": 0}
		if fmt.Sprint(counts) != fmt.Sprint(want) {
			t.Errorf("findings %v, want %v", counts, want)
		}
		for sev, n := range counts {
			if inReport[sev] != n {
				t.Errorf("findings say %d %s, the JSON report has %d", n, sev, inReport[sev])
			}
		}

		// Every run carries the category; the results are the report's.
		report, err := sarif.Open(out + "/trivy.sarif")
		if err != nil {
			t.Fatalf("SARIF: %v", err)
		}
		var results int
		for _, run := range report.Runs {
			if run.AutomationDetails == nil || deref(run.AutomationDetails.ID) != category {
				t.Errorf("run automationDetails %+v, want id %s", run.AutomationDetails, category)
			}
			results += len(run.Results)
		}
		if len(report.Runs) != 1 || results != 4 {
			t.Errorf("SARIF has %d runs, %d results; want 1 run, 4 results", len(report.Runs), results)
		}

		// The cosign vulnerability predicate is Trivy's: scanner and result.
		var vp struct {
			Scanner struct {
				URI, Version string
				Result       types.Report
			}
			Metadata struct{ ScanStartedOn, ScanFinishedOn time.Time }
		}
		if b, err := os.ReadFile(out + "/vuln.json"); err != nil || json.Unmarshal(b, &vp) != nil {
			t.Fatalf("cosign vuln predicate: %v\n%s", err, b)
		}
		if vp.Scanner.Version != scan.TrivyVersion() || vp.Scanner.URI != "pkg:github/aquasecurity/trivy@"+scan.TrivyVersion() || vp.Metadata.ScanStartedOn.IsZero() {
			t.Errorf("cosign vuln predicate scanner %s %s, started %v", vp.Scanner.URI, vp.Scanner.Version, vp.Metadata.ScanStartedOn)
		}
		inPredicate := 0
		for _, res := range vp.Scanner.Result.Results {
			inPredicate += len(res.Vulnerabilities)
		}
		if inPredicate != 4 || vp.Scanner.Result.ArtifactName != rep.ArtifactName {
			t.Errorf("cosign vuln predicate result: %d vulnerabilities of %s, want the JSON report's 4 of %s", inPredicate, vp.Scanner.Result.ArtifactName, rep.ArtifactName)
		}

		// --json FILE (the pipeline's spelling) takes the same companions.
		r = botcore(t, env, "", "scan", "--layout", f.layout, "--db-dir", f.db, "--json", out+"/scan.json", "--findings", out+"/counts.json")
		if b, err := os.ReadFile(out + "/counts.json"); r.code != 1 || err != nil || !strings.Contains(string(b), `"CRITICAL":1`) {
			t.Errorf("--findings with --json FILE: %v %s\n%s", err, b, r)
		}
	})

	t.Run("arm64 has the fixed next", func(t *testing.T) {
		r := botcore(t, env, "", "scan", "--layout", f.layout, "--platform", "linux/arm64", "--db-dir", f.db, "--severity", "CRITICAL")
		if r.code != 0 || strings.Contains(r.stdout, cveNext) || !strings.Contains(r.stderr, "picked linux/arm64") {
			t.Errorf("arm64: %s", r)
		}
	})

	t.Run("severity", func(t *testing.T) {
		r := botcore(t, env, "", "scan", "--layout", f.layout, "--db-dir", f.db, "--severity", "critical")
		if got := gateLines(r.stderr); r.code != 1 || !slices.Equal(got, []string{lineNext}) {
			t.Errorf("--severity critical: gate %q\n%s", got, r)
		}
		r = botcore(t, env, "", "scan", "--layout", f.layout, "--db-dir", f.db, "--severity", "MEDIUM")
		if got := gateLines(r.stderr); r.code != 1 || !slices.Equal(got, []string{lineReact}) {
			t.Errorf("--severity MEDIUM: gate %q\n%s", got, r)
		}
		r = botcore(t, env, "", "scan", "--layout", f.layout, "--db-dir", f.db, "--severity", "LOW,UNKNOWN")
		if got := gateLines(r.stderr); r.code != 1 || !slices.Equal(got, []string{lineRequests}) {
			t.Errorf("--severity LOW,UNKNOWN: gate %q\n%s", got, r)
		}
		r = botcore(t, env, "", "scan", "--layout", f.layout, "--db-dir", f.db, "--severity", "UNKNOWN")
		if r.code != 0 || !strings.Contains(r.stdout, "total 5:") {
			t.Errorf("--severity UNKNOWN passes but still lists everything: %s", r)
		}
	})

	t.Run("ignore file", func(t *testing.T) {
		path := ignore(t, cveNext)
		r := botcore(t, env, "", "scan", "--layout", f.layout, "--db-dir", f.db, "--severity", "CRITICAL", "--ignorefile", path)
		if r.code != 0 || strings.Contains(r.stdout, cveNext) || !strings.Contains(r.stdout, "total 4:") {
			t.Errorf("ignored critical: %s", r)
		}
		r = botcore(t, env, "", "scan", "--layout", f.layout, "--db-dir", f.db, "--ignorefile", path)
		if got := gateLines(r.stderr); r.code != 1 || !slices.Equal(got, []string{lineDebFixed, lineDebUnfixed}) {
			t.Errorf("ignored critical, HIGH remains: gate %q\n%s", got, r)
		}
	})

	t.Run("ignore unfixed", func(t *testing.T) {
		path := ignore(t, cveNext, cveDebFixed)
		r := botcore(t, env, "", "scan", "--layout", f.layout, "--db-dir", f.db, "--ignorefile", path)
		if got := gateLines(r.stderr); r.code != 1 || !slices.Equal(got, []string{lineDebUnfixed}) {
			t.Errorf("unfixed HIGH: gate %q\n%s", got, r)
		}
		r = botcore(t, env, "", "scan", "--layout", f.layout, "--db-dir", f.db, "--ignorefile", path, "--ignore-unfixed")
		if r.code != 0 || strings.Contains(r.stdout, cveDebUnfixed) {
			t.Errorf("--ignore-unfixed: %s", r)
		}
	})

	t.Run("default .trivyignore", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(work, ".trivyignore"), []byte(cveNext+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(work, ".trivyignore"))
		r := botcore(t, env, "", "scan", "--layout", f.layout, "--db-dir", f.db, "--severity", "CRITICAL")
		if r.code != 0 || !strings.Contains(r.stderr, "using the ignore file .trivyignore") {
			t.Errorf(".trivyignore in the current directory: %s", r)
		}
	})

	t.Run("--json FILE as the pipeline passes it", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		r := botcore(t, env, "", "scan", "--layout", f.layout, "--platform", "linux/amd64", "--severity", "HIGH,CRITICAL",
			"--json", out+"/scan.json", "--sarif", out+"/scan.sarif", "--ignore-unfixed", "--db-dir", f.db)
		if got := gateLines(r.stderr); r.code != 1 || !slices.Equal(got, []string{lineNext, lineDebFixed}) || !strings.HasPrefix(r.stdout, f.layout+" (linux/amd64)") {
			t.Errorf("gate %q\n%s", got, r)
		}
		var rep types.Report
		if b, err := os.ReadFile(out + "/scan.json"); err != nil || json.Unmarshal(b, &rep) != nil || len(rep.Results) != 3 {
			t.Errorf("--json FILE report: %v, %d results", err, len(rep.Results))
		}
		if _, err := os.Stat(out + "/scan.sarif"); err != nil {
			t.Error(err)
		}
		// Before the input too; a global --json (no file) still means the
		// summary on stdout.
		r = botcore(t, env, "", "scan", "--json", out+"/first.json", "--tarball", f.tarball, "--db-dir", f.db, "--severity", "CRITICAL")
		if _, err := os.Stat(out + "/first.json"); err != nil || r.code != 1 || strings.HasPrefix(r.stdout, "{") {
			t.Errorf("--json FILE before --tarball: %v\n%s", err, r)
		}
	})

	t.Run("json summary", func(t *testing.T) {
		r := botcore(t, env, "", "--json", "scan", "--layout", f.layout, "--db-dir", f.db)
		if r.code != 1 {
			t.Fatalf("want exit 1: %s", r)
		}
		var s scanSummary
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatalf("%v\n%s", err, r)
		}
		want := map[string]int{"CRITICAL": 1, "HIGH": 2, "MEDIUM": 1, "LOW": 1, "UNKNOWN": 0}
		if s.Platform != "linux/amd64" || s.Failed != 3 || len(s.Findings) != 5 || fmt.Sprint(s.Counts) != fmt.Sprint(want) ||
			s.Findings[0].VulnerabilityID != cveNext || s.Findings[0].FixedVersion != "15.5.30" {
			t.Errorf("summary: %+v", s)
		}
	})
}

func TestScanTarball(t *testing.T) {
	f := newFixture(t)
	t.Chdir(t.TempDir())
	env := map[string]string{"HOME": t.TempDir()}
	r := botcore(t, env, "", "scan", "--tarball", f.tarball, "--db-dir", f.db, "--severity", "CRITICAL")
	if got := gateLines(r.stderr); r.code != 1 || !slices.Equal(got, []string{lineNext}) {
		t.Errorf("tarball: gate %q\n%s", got, r)
	}

	// docker save | gzip
	gz := filepath.Join(t.TempDir(), "image.tar.gz")
	raw, err := os.ReadFile(f.tarball)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(raw)
	zw.Close()
	if err := os.WriteFile(gz, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r = botcore(t, env, "", "scan", "--tarball", gz, "--db-dir", f.db, "--severity", "CRITICAL")
	if got := gateLines(r.stderr); r.code != 1 || !slices.Equal(got, []string{lineNext}) {
		t.Errorf("gzipped tarball: gate %q\n%s", got, r)
	}

	r = botcore(t, env, "", "scan", "--tarball", f.tarball, "--platform", "linux/arm64", "--db-dir", f.db)
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "holds a linux/amd64 image, not linux/arm64") {
		t.Errorf("tarball of another platform: %s", r)
	}

	// The two-platform OCI layout as a tar (what OCI exporters write),
	// unpacked to a temporary directory that is removed afterwards.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	oci := filepath.Join(t.TempDir(), "oci.tar")
	tarDir(t, f.layout, oci)
	r = botcore(t, env, "", "scan", "--tarball", oci, "--db-dir", f.db, "--severity", "CRITICAL")
	if got := gateLines(r.stderr); r.code != 1 || !slices.Equal(got, []string{lineNext}) || !strings.Contains(r.stderr, "picked linux/amd64") {
		t.Errorf("OCI tarball: gate %q\n%s", got, r)
	}
	r = botcore(t, env, "", "scan", "--tarball", oci, "--platform", "linux/arm64", "--db-dir", f.db, "--severity", "CRITICAL")
	if r.code != 0 || !strings.Contains(r.stderr, "picked linux/arm64") {
		t.Errorf("OCI tarball, arm64: %s", r)
	}
	r = botcore(t, env, "", "scan", "--tarball", oci, "--platform", "linux/riscv64", "--db-dir", f.db)
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "the OCI layout tarball "+oci+" has no linux/riscv64 image (it has linux/amd64, linux/arm64)") {
		t.Errorf("OCI tarball without the platform: %s", r)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "botcore-oci-*")); len(left) != 0 {
		t.Errorf("unpacked layouts left behind: %v", left)
	}
}

// tarDir writes the files under dir into the tar file out.
func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(b))}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestScanRegistry(t *testing.T) {
	f := newFixture(t)
	t.Chdir(t.TempDir())
	srv := registrytest.NewBasic(t)
	srv.Push(t, srv.Host+"/bot/nextjs-ui-dashboard:"+testVersion, testIndex(t))
	env := envFor(t, srv)

	// SERVICE:TAG under DOCKER_REGISTRY, with its credentials.
	r := botcore(t, env, "", "scan", "nextjs-ui-dashboard:"+testVersion, "--db-dir", f.db, "--severity", "CRITICAL")
	if got := gateLines(r.stderr); r.code != 1 || !slices.Equal(got, []string{lineNext}) {
		t.Errorf("SERVICE:TAG: gate %q\n%s", got, r)
	}
	// --json before a reference is the summary switch, not a file name.
	r = botcore(t, env, "", "scan", "--json", "nextjs-ui-dashboard:"+testVersion, "--db-dir", f.db, "--severity", "CRITICAL")
	var s scanSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || r.code != 1 || s.Failed != 1 || s.Image != srv.Host+"/bot/nextjs-ui-dashboard:"+testVersion {
		t.Errorf("--json REF: %v %+v\n%s", err, s, r)
	}
	// A full reference, arm64.
	r = botcore(t, env, "", "scan", srv.Host+"/bot/nextjs-ui-dashboard:"+testVersion, "--platform", "linux/arm64", "--db-dir", f.db, "--severity", "CRITICAL")
	if r.code != 0 {
		t.Errorf("full reference, arm64: %s", r)
	}
	// Wrong credentials: the registry's explanation, one line.
	env["DOCKER_PASSWORD"] = "wrong"
	r = botcore(t, env, "", "scan", "nextjs-ui-dashboard:"+testVersion, "--db-dir", f.db)
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "rejected the credentials") {
		t.Errorf("wrong password: %s", r)
	}
}

// dbRegistry serves the DB of dir as trivy publishes it (an OCI artifact
// with one tar.gz layer) at <host>/trivy-db:2, counting the requests, and
// among them the blob downloads.
func dbRegistry(t *testing.T, dir string) (ref string, requests, blobGets *atomic.Int64) {
	t.Helper()
	requests, blobGets = new(atomic.Int64), new(atomic.Int64)
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			blobGets.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	img, err := trivydbtest.Artifact(dir)
	if err != nil {
		t.Fatal(err)
	}
	ref = strings.TrimPrefix(srv.URL, "http://") + "/trivy-db:2"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	requests.Store(0)
	blobGets.Store(0)
	return ref, requests, blobGets
}

func TestScanDBDownload(t *testing.T) {
	f := newFixture(t)
	t.Chdir(t.TempDir())
	ref, requests, _ := dbRegistry(t, f.db)
	env := map[string]string{"HOME": t.TempDir()}

	// Offline: even with a DB repository configured, nothing is fetched.
	env["TRIVY_DB_REPOSITORY"] = ref
	r := botcore(t, env, "", "scan", "--layout", f.layout, "--db-dir", f.db, "--severity", "CRITICAL")
	if r.code != 1 || requests.Load() != 0 {
		t.Errorf("--db-dir made %d requests: %s", requests.Load(), r)
	}

	// Online: the DB is downloaded into the cache, then reused.
	cache := filepath.Join(t.TempDir(), "trivy-cache")
	r = botcore(t, env, "", "scan", "--layout", f.layout, "--cache-dir", cache, "--severity", "CRITICAL")
	if got := gateLines(r.stderr); r.code != 1 || !slices.Equal(got, []string{lineNext}) || !strings.Contains(r.stderr, "downloading the vulnerability DB into "+filepath.Join(cache, "db")) {
		t.Fatalf("--cache-dir: gate %q\n%s", got, r)
	}
	if requests.Load() == 0 {
		t.Error("--cache-dir made no request")
	}
	meta, err := metadata.NewClient(filepath.Join(cache, "db")).Get()
	if err != nil || meta.DownloadedAt.IsZero() {
		t.Errorf("cached metadata %+v, %v", meta, err)
	}
	// A repository that does not answer: one line with the way out.
	r = botcore(t, env, "", "scan", "--layout", f.layout, "--cache-dir", t.TempDir(), "--db-repository", "127.0.0.1:1/trivy-db:2")
	if l := lastLine(r.stderr); r.code != 1 || !strings.HasPrefix(l, "botcore: cannot download the vulnerability DB (") ||
		!strings.HasSuffix(l, "): check the network or --db-repository, or pass --db-dir with a DB downloaded beforehand") {
		t.Errorf("unreachable DB repository: %s", r)
	}

	before := requests.Load()
	env["TRIVY_CACHE_DIR"] = cache // same cache, through the environment
	r = botcore(t, env, "", "scan", "--layout", f.layout, "--severity", "CRITICAL")
	if r.code != 1 || requests.Load() != before || strings.Contains(r.stderr, "downloading") {
		t.Errorf("fresh cached DB was downloaded again (%d requests): %s", requests.Load()-before, r)
	}
}

func TestScanBadInput(t *testing.T) {
	f := newFixture(t)
	t.Chdir(t.TempDir())
	env := map[string]string{"HOME": t.TempDir()}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--db-dir", f.db}, 2, "botcore: scan: no image given: pass an image reference, --layout DIR or --tarball FILE"},
		{[]string{"--layout", f.layout, "--tarball", f.tarball, "--db-dir", f.db}, 2, "more than one image given"},
		{[]string{"ghcr.io/acme/x:v1", "--layout", f.layout, "--db-dir", f.db}, 2, "more than one image given"},
		{[]string{"--layout", f.layout, "--db-dir", f.db, "--cache-dir", f.db}, 2, "both --db-dir and --cache-dir given"},
		{[]string{"--layout", f.layout, "--db-dir", f.db, "--severity", "HIGH,SEVERE"}, 2, `--severity: severity list "HIGH,SEVERE": unknown severity "SEVERE" (use UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL)`},
		{[]string{"--layout", f.layout, "--db-dir", f.db, "--severity", ","}, 2, "--severity: the severity list is empty"},
		{[]string{"--layout", f.layout, "--db-dir", f.db, "--sarif-category", "trivy/x/"}, 2, "--sarif-category names the SARIF report's category, but no report is written: add --sarif FILE"},
		{[]string{"--layout", f.layout, "--db-dir", f.db, "--platform", "linux"}, 2, `--platform: invalid platform "linux"`},
		{[]string{"--layout", f.layout, "--db-dir", f.db, "--platform", "linux/s390x"}, 1,
			"botcore: the OCI layout " + f.layout + " has no linux/s390x image (it has linux/amd64, linux/arm64): pass --platform with one of those"},
		{[]string{"--layout", t.TempDir(), "--db-dir", f.db}, 1, "is not an OCI image layout"},
		{[]string{"--layout", f.layout + "-missing", "--db-dir", f.db}, 1,
			"botcore: " + f.layout + "-missing is not a directory: --layout takes an OCI image layout directory (with index.json and blobs/)"},
		{[]string{"--tarball", f.db + "/metadata.json", "--db-dir", f.db}, 1, "is not a tar archive"},
		{[]string{"--layout", f.layout, "--db-dir", filepath.Join(f.db, "nope")}, 1, "the vulnerability DB directory " + filepath.Join(f.db, "nope") + " does not exist"},
		{[]string{"--layout", f.layout, "--db-dir", f.layout}, 1, "has no trivy.db"},
		{[]string{"--layout", f.layout, "--db-dir", f.db, "--ignorefile", "missing"}, 1, "cannot read the ignore file missing"},
	} {
		r := botcore(t, env, "", append([]string{"scan"}, c.args...)...)
		errLine := lastLine(r.stderr)
		if c.code == 2 {
			// kong's usage errors end with the pointer to --help.
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			errLine = lines[0]
			if len(lines) != 2 || lines[1] != "botcore: run `botcore scan --help` for usage" {
				t.Errorf("%v: stderr %q", c.args, r.stderr)
			}
		}
		if r.code != c.code || !strings.Contains(errLine, c.want) || r.stdout != "" {
			t.Errorf("%v: want exit %d and %q in the error line, got %s", c.args, c.code, c.want, r)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
