package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/bot-core/delivery/cmd/botcore/internal/scan"
)

// gate gives, for every image and platform, the files scan and sbom give
// for it alone, in one run; a second image of the same layers reads none.
func TestGateScansAndSBOMsEveryImageInOneRun(t *testing.T) {
	f := newFixture(t)
	t.Chdir(t.TempDir()) // no .trivyignore of the repository gets in
	api := filepath.Join(t.TempDir(), "api")
	p, err := layout.Write(api, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(testIndex(t)); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	out := filepath.Join(work, "out")
	layers, catalogs := filepath.Join(work, "layers"), filepath.Join(work, "catalogs")

	r := botcore(t, nil, "", "gate", "--db-dir", f.db, "--severity", "CRITICAL", "--platform", "linux/amd64,linux/arm64",
		"--layer-cache", layers, "--catalog-cache", catalogs, "--out", out, "web="+f.layout, "api="+api)
	// The amd64 image has next 15.5.29 (CRITICAL), the arm64 one 15.5.30.
	if r.code != 1 || !strings.Contains(r.stderr, "web (linux/amd64) has 1 vulnerability at CRITICAL:\n  "+lineNext) ||
		!strings.Contains(r.stderr, "api (linux/amd64) has 1 vulnerability") || strings.Contains(r.stderr, "(linux/arm64) has") {
		t.Fatalf("gate: want exit 1 naming the two amd64 images' finding only, got %s", r)
	}
	var sum gateSummary
	b, err := os.ReadFile(filepath.Join(out, "gate.json"))
	if err != nil {
		t.Fatalf("gate.json: %v\n%s", err, r)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.Images) != 4 {
		t.Fatalf("gate.json lists %d images, want 2 services x 2 platforms:\n%s", len(sum.Images), b)
	}
	for i, im := range sum.Images {
		want := []string{"web", "web", "api", "api"}[i] + " " + []string{"linux/amd64", "linux/arm64"}[i%2]
		if got := im.Name + " " + im.Platform; got != want {
			t.Errorf("gate.json image %d is %s, want %s", i, got, want)
		}
		if im.Passed != (im.Platform == "linux/arm64") || im.Counts["CRITICAL"] != map[bool]int{true: 0, false: 1}[im.Passed] {
			t.Errorf("%s %s: passed %v with counts %v", im.Name, im.Platform, im.Passed, im.Counts)
		}
		// api's layers are web's, analyzed and cataloged earlier in the run.
		wantLayers, reused := scan.Layers{Total: 1, Analyzed: 1}, false
		if im.Name == "api" {
			wantLayers, reused = scan.Layers{Total: 1, Analyzed: 0}, true
		}
		if im.Layers != wantLayers || im.SBOMReused != reused || im.Packages == 0 {
			t.Errorf("%s %s: layers %+v, SBOM reused %v, %d packages; want %+v, %v, some", im.Name, im.Platform, im.Layers, im.SBOMReused, im.Packages, wantLayers, reused)
		}
	}

	// Each image's files are what scan and sbom write for it.
	for _, plat := range []string{"linux/amd64", "linux/arm64"} {
		dir := filepath.Join(out, "api", strings.ReplaceAll(plat, "/", "-"))
		alone := t.TempDir()
		botcore(t, nil, "", "scan", "--layout", api, "--platform", plat, "--db-dir", f.db, "--severity", "CRITICAL",
			"--json-report", filepath.Join(alone, "scan.json"), "--sarif", filepath.Join(alone, "scan.sarif"),
			"--sarif-category", "trivy/api/"+plat+"/", "--cosign-vuln", filepath.Join(alone, "vuln.json"),
			"--findings", filepath.Join(alone, "findings.json"))
		if r := botcore(t, nil, "", "sbom", "--layout", api, "--platform", plat, "--name", "api", "-o", filepath.Join(alone, "sbom.spdx.json")); r.code != 0 {
			t.Fatalf("sbom: %s", r)
		}
		for file, runFields := range map[string][]string{
			"scan.json":      {"CreatedAt", "ReportID"},
			"scan.sarif":     nil,
			"vuln.json":      {"metadata.scanStartedOn", "metadata.scanFinishedOn", "scanner.result.CreatedAt", "scanner.result.ReportID"},
			"findings.json":  nil,
			"sbom.spdx.json": {"documentNamespace", "creationInfo.created"},
		} {
			a := jsonOf(t, withoutRunFields(t, filepath.Join(alone, file), runFields...))
			g := jsonOf(t, withoutRunFields(t, filepath.Join(dir, file), runFields...))
			if a != g {
				t.Errorf("api %s: gate's %s differs from what scan/sbom write alone:\nalone:\n%s\ngate:\n%s", plat, file, a, g)
			}
		}
	}
}

func TestGateRefusesBadInputAndLeavesNoSummary(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "out")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"web"}, exitUsage, `image "web": give NAME=LAYOUT`},
		{[]string{"../x=" + f.layout}, exitUsage, `image "../x=`},
		{[]string{"web=" + f.layout, "web=" + f.layout}, exitUsage, `image name "web" given twice`},
		{[]string{"--platform", "linux", "web=" + f.layout}, exitUsage, `invalid platform "linux"`},
		{[]string{"--platform", "linux/s390x", "web=" + f.layout}, exitError, "web (linux/s390x)"},
		{[]string{"web=" + filepath.Join(t.TempDir(), "missing")}, exitError, "web (linux/amd64)"},
	} {
		r := botcore(t, nil, "", append([]string{"gate", "--db-dir", f.db, "--out", out}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("gate %v: want exit %d mentioning %q, got %s", c.args, c.code, c.want, r)
		}
		if _, err := os.Stat(filepath.Join(out, "gate.json")); err == nil {
			t.Fatalf("gate %v left gate.json behind", c.args)
		}
	}
}
