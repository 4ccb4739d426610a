package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bot-core/delivery/test/sigstoretest"
	"github.com/bot-core/delivery/test/trivydbtest"
)

// The supplychain module (modules/supplychain) is called on its own, as a
// repository that installed it would: `dagger -m ./modules/supplychain call`.

const scModule = "./modules/supplychain"

// scCall runs `dagger -m ./modules/supplychain call ARGS...` from the
// repository root and returns stdout, stderr and the error.
func scCall(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	start := time.Now()
	stdout, stderr, err := runDagger(t, repoRoot(t), append([]string{"-m", scModule, "call", "--progress=plain"}, args...)...)
	t.Logf("dagger -m %s call %s: %s", scModule, strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return stdout, stderr, err
}

// scMust is scCall for calls that must succeed.
func scMust(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := scCall(t, args...)
	if err != nil {
		t.Fatalf("dagger -m %s call %s: %v\n--- stderr ---\n%s", scModule, strings.Join(args, " "), err, tail(stderr, 60))
	}
	return stdout
}

// The test image: Debian 12 with one dpkg package (source "example"), and a
// Node.js app's node_modules; the arm64 image has the fixed next.
var (
	scAmd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	scArm64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

const (
	scCVENext    = "CVE-2099-0101" // CRITICAL, npm next <15.5.30
	scCVEExample = "CVE-2099-0102" // HIGH, Debian 12 example <1.2-1
	scCVEReact   = "CVE-2099-0103" // MEDIUM, npm react <19.1.1
)

var scAdvisories = []trivydbtest.Advisory{
	{ID: scCVENext, Package: "next", Severity: "CRITICAL", Title: "next: test advisory", Ecosystem: trivydbtest.Npm,
		Vulnerable: []string{">=15.0.0, <15.5.30"}, Patched: []string{"15.5.30"}},
	{ID: scCVEExample, Package: "example", Severity: "HIGH", Title: "example: test advisory", Debian: "12", Fixed: "1.2-1"},
	{ID: scCVEReact, Package: "react", Severity: "MEDIUM", Title: "react: test advisory", Ecosystem: trivydbtest.Npm,
		Vulnerable: []string{">=19.0.0, <19.1.1"}, Patched: []string{"19.1.1"}},
}

func scFiles(arch, nextVersion string) map[string]string {
	return map[string]string{
		"etc/debian_version": "12.11\n",
		"etc/os-release": `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
`,
		"var/lib/dpkg/status": `Package: libexample1
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 100
Maintainer: Test <test@example.com>
Architecture: ` + arch + `
Source: example
Version: 1.0-1
Description: example library for tests
 Used by the supplychain module's tests.

`,
		"app/node_modules/next/package.json":  fmt.Sprintf(`{"name": "next", "version": %q, "license": "MIT"}`, nextVersion),
		"app/node_modules/react/package.json": `{"name": "react", "version": "19.1.0", "license": "MIT"}`,
	}
}

// scImage builds a one-layer OCI image of platform p with files.
func scImage(t *testing.T, p v1.Platform, files map[string]string) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	dirs := map[string]bool{}
	var names []string
	for n := range files {
		names = append(names, n)
		for d := filepath.Dir(n); d != "."; d = filepath.Dir(d) {
			dirs[d+"/"] = true
		}
	}
	var dirList []string
	for d := range dirs {
		dirList = append(dirList, d)
	}
	slices.Sort(dirList)
	slices.Sort(names)
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
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(ggcrtypes.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.MediaType(mutate.ConfigMediaType(empty.Image, ggcrtypes.OCIConfigJSON), ggcrtypes.OCIManifestSchema1)
	if img, err = mutate.AppendLayers(img, l); err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = p.OS, p.Architecture
	cf.Created = v1.Time{Time: mtime}
	cf.Config.WorkingDir = "/app"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// scIndex is the two-platform index: amd64 with next 15.5.29, arm64 with
// the fixed 15.5.30.
func scIndex(t *testing.T) v1.ImageIndex {
	t.Helper()
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, ggcrtypes.OCIImageIndex),
		mutate.IndexAddendum{Add: scImage(t, scAmd64, scFiles("amd64", "15.5.29")), Descriptor: v1.Descriptor{Platform: &scAmd64}},
		mutate.IndexAddendum{Add: scImage(t, scArm64, scFiles("arm64", "15.5.30")), Descriptor: v1.Descriptor{Platform: &scArm64}})
}

// scLayout writes the index as an OCI image layout (index.json pointing at
// the image index, as an OCI exporter writes a multi-platform image).
func scLayout(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "app")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(scIndex(t), layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": "v1.0.0",
	})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// scRelabelled is scLayout's amd64 image with release labels and another
// creation date (what a new version of unchanged sources is), alone in a
// layout.
func scRelabelled(t *testing.T, version string) (string, v1.Image) {
	t.Helper()
	img := scImage(t, scAmd64, scFiles("amd64", "15.5.29"))
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	// A label of this run's own: with the same bytes as an earlier run's, the
	// engine would replay that run's cached scan and SBOM execs, and the test
	// could not see whether this one reused the catalog or made another.
	cf.Config.Labels = map[string]string{"org.opencontainers.image.version": version, "test.run": strconv.FormatInt(time.Now().UnixNano(), 10)}
	cf.Created = v1.Time{Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "app")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithPlatform(scAmd64)); err != nil {
		t.Fatal(err)
	}
	return dir, img
}

// scanResult is the scalar fields of the module's ScanResult.
type scanResult struct {
	Passed   bool
	Failure  string
	Findings string
}

// scScan runs `scan ARGS...` and reads the result's passed, failure and
// findings, one call each: `dagger call` prints one leaf per call (an
// object only as its ID). Only the first call scans; the others reuse the
// engine's cached exec.
func scScan(t *testing.T, args ...string) (scanResult, map[string]int) {
	t.Helper()
	get := func(field string) string {
		return strings.TrimSpace(scMust(t, append(append([]string{"scan"}, args...), field)...))
	}
	res := scanResult{Passed: get("passed") == "true", Failure: get("failure"), Findings: get("findings")}
	counts := map[string]int{}
	if err := json.Unmarshal([]byte(res.Findings), &counts); err != nil {
		t.Fatalf("findings %q is not a JSON object of counts: %v", res.Findings, err)
	}
	return res, counts
}

// TestSupplychainModuleScanAndSBOM: sbom and scan of an OCI layout through
// the module, against a Trivy database written in the test (no network).
func TestSupplychainModuleScanAndSBOM(t *testing.T) {
	lay := scLayout(t)

	t.Run("sbom is SPDX 2.3 JSON listing the image's packages", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "sbom.spdx.json")
		scMust(t, "sbom", "--layout", lay, "--platform", "linux/amd64", "--name", "app", "export", "--path", out)
		checkSBOM(t, out, "next", "15.5.29", "react", "19.1.0", "libexample1", "1.0-1")
		doc := readJSON(t, out)
		if doc["name"] != "app" {
			t.Errorf("SBOM document name %v, want app", doc["name"])
		}
		arm := filepath.Join(t.TempDir(), "sbom-arm64.spdx.json")
		scMust(t, "sbom", "--layout", lay, "--platform", "linux/arm64", "--name", "app", "export", "--path", arm)
		checkSBOM(t, arm, "next", "15.5.30")
	})

	// A database from write-db: its only advisory names a package no image has.
	passDB := filepath.Join(t.TempDir(), "trivy-db")
	write := exec.Command("go", "run", "./test/trivydbtest/write-db", passDB)
	write.Dir = repoRoot(t)
	if out, err := write.CombinedOutput(); err != nil {
		t.Fatalf("write-db: %v\n%s", err, out)
	}
	t.Run("scan passes against a database without matching advisories", func(t *testing.T) {
		res, counts := scScan(t, "--layout", lay, "--platform", "linux/amd64", "--name", "app", "--trivy-db", passDB)
		if !res.Passed || res.Failure != "" {
			t.Fatalf("passed=%v failure=%q, want a pass", res.Passed, res.Failure)
		}
		for _, s := range []string{"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"} {
			if n, ok := counts[s]; !ok || n != 0 {
				t.Errorf("findings %v: want %s: 0", counts, s)
			}
		}
		sarif := filepath.Join(t.TempDir(), "scan.sarif")
		scMust(t, "scan", "--layout", lay, "--platform", "linux/amd64", "--name", "app", "--trivy-db", passDB, "sarif", "export", "--path", sarif)
		checkSARIF(t, sarif, "", "trivy/app/linux/amd64/")
	})

	db := writeDB(t, scAdvisories...)
	t.Run("scan fails the gate naming the CVE, with reports and counts", func(t *testing.T) {
		res, counts := scScan(t, "--layout", lay, "--platform", "linux/amd64", "--name", "app", "--trivy-db", db)
		if res.Passed {
			t.Fatalf("the gate passed with a CRITICAL advisory for next 15.5.29 (findings %s)", res.Findings)
		}
		for _, want := range []string{scCVENext, "next", "15.5.29", "CRITICAL", "15.5.30", scCVEExample, "libexample1"} {
			if !strings.Contains(res.Failure, want) {
				t.Errorf("failure does not mention %q:\n%s", want, res.Failure)
			}
		}
		if strings.Contains(res.Failure, scCVEReact) {
			t.Errorf("failure lists the MEDIUM %s, which the default gate lets pass:\n%s", scCVEReact, res.Failure)
		}
		if counts["CRITICAL"] != 1 || counts["HIGH"] != 1 || counts["MEDIUM"] != 1 {
			t.Errorf("findings %v, want CRITICAL 1, HIGH 1, MEDIUM 1", counts)
		}
		dir := t.TempDir()
		sarif, report := filepath.Join(dir, "scan.sarif"), filepath.Join(dir, "scan.json")
		base := []string{"scan", "--layout", lay, "--platform", "linux/amd64", "--name", "app", "--trivy-db", db}
		scMust(t, append(base, "sarif", "export", "--path", sarif)...)
		scMust(t, append(base, "report", "export", "--path", report)...)
		checkSARIF(t, sarif, scCVENext, "trivy/app/linux/amd64/")
		if b, err := os.ReadFile(report); err != nil || !bytes.Contains(b, []byte(scCVENext)) {
			t.Errorf("the JSON report does not list %s (%v)", scCVENext, err)
		}
		// The cosign vulnerability predicate is there whether or not the
		// gate passed: Trivy as the scanner, the findings as its result.
		vuln := filepath.Join(dir, "vuln.json")
		scMust(t, append(base, "vuln", "export", "--path", vuln)...)
		var vp struct {
			Scanner struct {
				URI    string `json:"uri"`
				Result struct{ ArtifactName string }
			} `json:"scanner"`
		}
		b, err := os.ReadFile(vuln)
		if err != nil || json.Unmarshal(b, &vp) != nil || !strings.HasPrefix(vp.Scanner.URI, "pkg:github/aquasecurity/trivy@") || !bytes.Contains(b, []byte(scCVENext)) {
			t.Errorf("cosign vuln predicate (%v): scanner %q, want trivy's, listing %s", err, vp.Scanner.URI, scCVENext)
		}
	})

	t.Run("a relabelled image is scanned and SBOM'd without reading a layer, and its reports name it", func(t *testing.T) {
		// The original, scanned and cataloged first (maybe already, above).
		scMust(t, "scan", "--layout", lay, "--platform", "linux/amd64", "--name", "app", "--trivy-db", db, "findings")
		scMust(t, "sbom", "--layout", lay, "--platform", "linux/amd64", "--name", "app", "contents")

		relabelled, img := scRelabelled(t, "v1.0.1")
		base := []string{"scan", "--layout", relabelled, "--platform", "linux/amd64", "--name", "app", "--trivy-db", db}
		if n := strings.TrimSpace(scMust(t, append(base, "layers")...)); n != "1" {
			t.Errorf("layers %q, want 1", n)
		}
		if n := strings.TrimSpace(scMust(t, append(base, "layers-analyzed")...)); n != "0" {
			t.Errorf("the relabelled image's scan read %s layers, want 0 (all scanned before)", n)
		}
		res, counts := scScan(t, base[1:]...)
		if res.Passed || counts["CRITICAL"] != 1 || counts["HIGH"] != 1 {
			t.Errorf("the relabelled image's scan: passed %v, findings %v; want the original's gate failure, CRITICAL 1, HIGH 1", res.Passed, counts)
		}
		report := filepath.Join(t.TempDir(), "scan.json")
		scMust(t, append(base, "report", "export", "--path", report)...)
		meta, _ := readJSON(t, report)["Metadata"].(map[string]any)
		config, _ := img.ConfigName()
		if meta["ImageID"] != config.String() {
			t.Errorf("the relabelled image's report has ImageID %v, want its config %s", meta["ImageID"], config)
		}

		sbom := filepath.Join(t.TempDir(), "sbom.spdx.json")
		_, stderr, err := scCall(t, "sbom", "--layout", relabelled, "--platform", "linux/amd64", "--name", "app", "export", "--path", sbom)
		if err != nil {
			t.Fatalf("sbom of the relabelled image: %v\n%s", err, tail(stderr, 30))
		}
		if !strings.Contains(stderr, "took the packages from the catalog of the same layers") {
			t.Errorf("the relabelled image was cataloged again:\n%s", tail(stderr, 30))
		}
		checkSBOM(t, sbom, "next", "15.5.29", "react", "19.1.0", "libexample1", "1.0-1")
		digest, _ := img.Digest()
		if b, err := os.ReadFile(sbom); err != nil || !bytes.Contains(b, []byte(digest.Hex)) {
			t.Errorf("the relabelled image's SBOM does not name its digest %s (%v)", digest, err)
		}
	})

	t.Run("gate scans and SBOMs every platform of several layouts in one call", func(t *testing.T) {
		base := []string{"gate", "--layouts", lay + "," + lay, "--names", "app,web", "--platforms", "linux/amd64,linux/arm64",
			"--trivy-db", db, "--severity", "CRITICAL"}
		if passed := strings.TrimSpace(scMust(t, append(base, "passed")...)); passed != "false" {
			t.Errorf("passed %q, want false: the amd64 image has next 15.5.29", passed)
		}
		failure := scMust(t, append(base, "failure")...)
		for _, want := range []string{"app (linux/amd64) has 1 vulnerability at CRITICAL", "web (linux/amd64) has 1 vulnerability", scCVENext} {
			if !strings.Contains(failure, want) {
				t.Errorf("failure does not mention %q:\n%s", want, failure)
			}
		}
		if strings.Contains(failure, "(linux/arm64) has") {
			t.Errorf("failure names an arm64 image, which has the fixed next:\n%s", failure)
		}
		var sum struct {
			Images []struct {
				Name, Platform, Dir string
				Passed              bool
				Counts              map[string]int
				Layers              struct{ Total, Analyzed int }
			}
		}
		if err := json.Unmarshal([]byte(scMust(t, append(base, "summary")...)), &sum); err != nil || len(sum.Images) != 4 {
			t.Fatalf("summary: %v, %d images, want 4", err, len(sum.Images))
		}
		out := t.TempDir()
		scMust(t, append(base, "reports", "export", "--path", out)...)
		for _, im := range sum.Images {
			if im.Passed != (im.Platform == "linux/arm64") || im.Counts["HIGH"] != 1 {
				t.Errorf("%s %s: passed %v, counts %v", im.Name, im.Platform, im.Passed, im.Counts)
			}
			// web's layers are app's, read earlier in the same exec.
			if im.Name == "web" && im.Layers.Analyzed != 0 {
				t.Errorf("web %s: %d of %d layers read, want none (app's, scanned before)", im.Platform, im.Layers.Analyzed, im.Layers.Total)
			}
			dir := filepath.Join(out, im.Dir)
			checkSARIF(t, filepath.Join(dir, "scan.sarif"), scCVEExample, "trivy/"+im.Name+"/"+im.Platform+"/")
			next := map[string]string{"linux/amd64": "15.5.29", "linux/arm64": "15.5.30"}[im.Platform]
			checkSBOM(t, filepath.Join(dir, "sbom.spdx.json"), "next", next)
			if doc := readJSON(t, filepath.Join(dir, "sbom.spdx.json")); doc["name"] != im.Name {
				t.Errorf("%s %s: SBOM named %v", im.Name, im.Platform, doc["name"])
			}
			for _, f := range []string{"scan.json", "vuln.json", "findings.json"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("%s %s: %v", im.Name, im.Platform, err)
				}
			}
		}
		if _, stderr, err := scCall(t, "gate", "--layouts", lay, "--names", "app,web", "--trivy-db", db, "passed"); err == nil ||
			!strings.Contains(stderr, "one name per layout") {
			t.Errorf("gate with two names for one layout: err %v\n%s", err, tail(stderr, 10))
		}
	})

	t.Run("scan --severity CRITICAL passes the arm64 image, still counting the rest", func(t *testing.T) {
		res, counts := scScan(t, "--layout", lay, "--platform", "linux/arm64", "--name", "app", "--trivy-db", db, "--severity", "CRITICAL")
		if !res.Passed {
			t.Fatalf("arm64 has the fixed next, yet the CRITICAL gate failed:\n%s", res.Failure)
		}
		if counts["CRITICAL"] != 0 || counts["HIGH"] != 1 || counts["MEDIUM"] != 1 {
			t.Errorf("findings %v, want CRITICAL 0, HIGH 1, MEDIUM 1", counts)
		}
		sarif := filepath.Join(t.TempDir(), "scan.sarif")
		scMust(t, "scan", "--layout", lay, "--platform", "linux/arm64", "--name", "app", "--trivy-db", db, "--severity", "CRITICAL", "sarif", "export", "--path", sarif)
		checkSARIF(t, sarif, scCVEExample, "trivy/app/linux/arm64/")
	})

	t.Run("scan with a .trivyignore leaves the listed CVEs out", func(t *testing.T) {
		ignore := filepath.Join(t.TempDir(), ".trivyignore")
		if err := os.WriteFile(ignore, []byte("# accepted for the test\n"+scCVENext+"\n"+scCVEExample+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		res, counts := scScan(t, "--layout", lay, "--platform", "linux/amd64", "--name", "app", "--trivy-db", db, "--trivyignore", ignore)
		if !res.Passed {
			t.Fatalf("the ignored CVEs still fail the gate:\n%s", res.Failure)
		}
		if counts["CRITICAL"] != 0 || counts["HIGH"] != 0 || counts["MEDIUM"] != 1 {
			t.Errorf("findings %v, want CRITICAL 0, HIGH 0, MEDIUM 1", counts)
		}
	})

	t.Run("a scan that cannot run is an error, not a failed gate", func(t *testing.T) {
		_, stderr, err := scCall(t, "scan", "--layout", lay, "--platform", "linux/s390x", "--trivy-db", db, "passed")
		if err == nil {
			t.Fatal("scanning a platform the layout does not have succeeded")
		}
		for _, want := range []string{"could not run", "s390x"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("the error does not mention %q:\n%s", want, tail(stderr, 30))
			}
		}
	})

	t.Run("sbom of the engine's Debian stand-in image", func(t *testing.T) {
		deb := standInLayout(t, "library/debian:bookworm-slim")
		out := filepath.Join(t.TempDir(), "debian.spdx.json")
		scMust(t, "sbom", "--layout", deb, "--platform", "linux/amd64", "--name", "debian", "export", "--path", out)
		checkSBOMNames(t, out, "dpkg", "bash", "libc6", "base-files")
	})
}

// standInLayout finds the OCI layout hack/engine built for a stand-in image
// (listed in its images.list), or skips.
func standInLayout(t *testing.T, image string) string {
	t.Helper()
	cache := os.Getenv("BOTCORE_CACHE")
	if cache == "" {
		cache = "/var/cache/bot-core"
	}
	f, err := os.Open(filepath.Join(cache, "run", "images.list"))
	if err != nil {
		t.Skipf("no stand-in images list: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		dir, names, _ := strings.Cut(sc.Text(), " ")
		if slices.Contains(strings.Split(names, ","), image) {
			if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
				t.Skipf("stand-in layout %s: %v", dir, err)
			}
			return dir
		}
	}
	t.Skipf("%s is not among the stand-in images", image)
	return ""
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// checkSBOMNames is checkSBOM by package name only.
func checkSBOMNames(t *testing.T, path string, names ...string) {
	t.Helper()
	doc := readJSON(t, path)
	if doc["spdxVersion"] != "SPDX-2.3" {
		t.Errorf("%s: spdxVersion %v", path, doc["spdxVersion"])
	}
	pkgs, _ := doc["packages"].([]any)
	have := map[string]bool{}
	for _, p := range pkgs {
		if m, ok := p.(map[string]any); ok {
			n, _ := m["name"].(string)
			have[n] = true
		}
	}
	for _, n := range names {
		if !have[n] {
			t.Errorf("%s lists no package %s (%d packages)", path, n, len(pkgs))
		}
	}
}

// TestSupplychainModuleSign signs, attests and verifies through the module
// with a key, against a registry on this machine reached through a tunnel;
// the key, its password and the registry password never show up in the
// logs or the registry.
func TestSupplychainModuleSign(t *testing.T) {
	reg := startRegistry(t)
	repo := reg + "/sc/app"
	idx := scIndex(t)
	tag, err := name.NewTag(repo + ":v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	indexDigest, _ := idx.Digest()
	im, _ := idx.IndexManifest()
	var amd64Digest v1.Hash
	for _, m := range im.Manifests {
		if m.Platform.Architecture == "amd64" {
			amd64Digest = m.Digest
		}
	}

	const registryPassword = "planted-registry-password-sc-7d21"
	const keyPassword = "planted-cosign-password-sc-4e88"
	kp := sigstoretest.NewKeyPair(t, keyPassword)
	other := sigstoretest.NewKeyPair(t, "")
	t.Setenv("BOTCORE_TEST_SC_KEY", string(kp.PrivatePEM))
	t.Setenv("BOTCORE_TEST_SC_KEY_PASSWORD", keyPassword)
	t.Setenv("BOTCORE_TEST_SC_REGISTRY_PASSWORD", registryPassword)
	t.Setenv("BOTCORE_TEST_SC_PUB", string(kp.PublicPEM))
	t.Setenv("BOTCORE_TEST_SC_OTHER_PUB", string(other.PublicPEM))
	planted := []string{registryPassword, keyPassword, strings.TrimSpace(string(kp.PrivatePEM))}

	signer := []string{"signer", "--key", "env:BOTCORE_TEST_SC_KEY", "--key-password", "env:BOTCORE_TEST_SC_KEY_PASSWORD", "--no-tlog",
		"with-registry-auth", "--registry", repo, "--username", "ci", "--password", "env:BOTCORE_TEST_SC_REGISTRY_PASSWORD",
		"with-tunnel", "--service", "tcp://" + reg}
	var logs bytes.Buffer
	call := func(t *testing.T, args ...string) string {
		t.Helper()
		stdout, stderr, err := scCall(t, args...)
		logs.WriteString(stdout + stderr)
		if err != nil {
			t.Fatalf("dagger -m %s call %s: %v\n--- stderr ---\n%s", scModule, strings.Join(args, " "), err, tail(stderr, 60))
		}
		return stdout
	}

	indexRef := repo + "@" + indexDigest.String()
	amd64Ref := repo + "@" + amd64Digest.String()
	t.Run("sign the index and its platform manifests by digest", func(t *testing.T) {
		out := call(t, append(signer, "sign", "--refs", indexRef, "--recursive")...)
		if !strings.Contains(out, indexDigest.String()) {
			t.Errorf("sign printed no line for the index:\n%s", out)
		}
		for _, d := range append([]v1.Hash{indexDigest}, amd64Digest) {
			sig := repo + ":" + strings.Replace(d.String(), ":", "-", 1) + ".sig"
			if _, err := remote.Head(mustRef(t, sig)); err != nil {
				t.Errorf("no signature %s: %v", sig, err)
			}
		}
	})

	t.Run("attest the amd64 image's SBOM", func(t *testing.T) {
		sbom := filepath.Join(t.TempDir(), "sbom.spdx.json")
		call(t, "sbom", "--layout", scLayout(t), "--platform", "linux/amd64", "--name", "app", "export", "--path", sbom)
		call(t, append(signer, "attest", "--ref", amd64Ref, "--predicate", sbom)...)
		att := repo + ":" + strings.Replace(amd64Digest.String(), ":", "-", 1) + ".att"
		if _, err := remote.Head(mustRef(t, att)); err != nil {
			t.Errorf("no attestation %s: %v", att, err)
		}
	})

	t.Run("verify accepts the key and refuses another", func(t *testing.T) {
		verify := []string{"verify", "--insecure-ignore-tlog", "--host-services", "tcp://" + reg}
		out := call(t, append(verify, "--ref", repo+":v1.0.0", "--key", "env:BOTCORE_TEST_SC_PUB", "--recursive")...)
		if !strings.Contains(out, "verified") || !strings.Contains(out, indexDigest.String()) {
			t.Errorf("verify printed:\n%s", out)
		}
		call(t, append(verify, "--ref", amd64Ref, "--key", "env:BOTCORE_TEST_SC_PUB", "--attestation-type", "spdxjson")...)
		_, stderr, err := scCall(t, append(verify, "--ref", repo+":v1.0.0", "--key", "env:BOTCORE_TEST_SC_OTHER_PUB")...)
		logs.WriteString(stderr)
		if err == nil {
			t.Error("verify accepted a signature by another key")
		} else if !strings.Contains(stderr, "signed with another key") {
			t.Errorf("verify failed, but not for the key:\n%s", tail(stderr, 20))
		}
	})

	t.Run("signing without a key or token is refused before anything runs", func(t *testing.T) {
		_, stderr, err := scCall(t, "signer", "sign", "--refs", indexRef)
		if err == nil || !strings.Contains(stderr, "no way to sign") {
			t.Errorf("err=%v\n%s", err, tail(stderr, 20))
		}
	})

	t.Run("no planted secret in logs or the registry", func(t *testing.T) {
		checkNoSecrets(t, logs.Bytes(), "", reg, planted...)
	})
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
