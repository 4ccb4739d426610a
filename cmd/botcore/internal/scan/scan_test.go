package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/owenrumney/go-sarif/v2/sarif"

	"github.com/bot-core/delivery/cmd/botcore/internal/imagesrc"
	"github.com/bot-core/delivery/pipelines/vuln"
	"github.com/bot-core/delivery/test/trivydbtest"
)

const (
	cveNext       = "CVE-2099-0101" // CRITICAL, next <15.5.30
	cveDebFixed   = "CVE-2099-0102" // HIGH, example < 1.2-1
	cveDebUnfixed = "CVE-2099-0103" // HIGH, example, no fix
	cveReact      = "CVE-2099-0104" // MEDIUM, react <19.1.1
)

var advisories = []trivydbtest.Advisory{
	{ID: cveNext, Package: "next", Severity: "CRITICAL", Ecosystem: trivydbtest.Npm, Vulnerable: []string{"<15.5.30"}, Patched: []string{"15.5.30"}},
	{ID: cveDebFixed, Package: "example", Severity: "HIGH", Debian: "13", Fixed: "1.2-1"},
	{ID: cveDebUnfixed, Package: "example", Severity: "HIGH", Debian: "13"},
	{ID: cveReact, Package: "react", Severity: "MEDIUM", Ecosystem: trivydbtest.Npm, Vulnerable: []string{"<19.1.1"}, Patched: []string{"19.1.1"}},
}

// testImage is a Debian 13 image with one dpkg package (source "example")
// and a Next.js app's node_modules.
func testImage(t *testing.T) *imagesrc.Image {
	t.Helper()
	img, err := crane.Image(map[string][]byte{
		"etc/debian_version": []byte("13.1\n"),
		"etc/os-release":     []byte("ID=debian\nVERSION_ID=\"13\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n"),
		"var/lib/dpkg/status": []byte("Package: libexample1\nStatus: install ok installed\nArchitecture: amd64\n" +
			"Source: example\nVersion: 1.0-1\nDescription: example library\n\n"),
		"app/node_modules/next/package.json":  []byte(`{"name": "next", "version": "15.5.29"}`),
		"app/node_modules/react/package.json": []byte(`{"name": "react", "version": "19.1.0"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return &imagesrc.Image{Image: img, Name: "test-image", Digest: d, Platform: v1.Platform{OS: "linux", Architecture: "amd64"}}
}

func testDB(t *testing.T) DB {
	t.Helper()
	dir := t.TempDir()
	if err := trivydbtest.Write(dir, advisories...); err != nil {
		t.Fatal(err)
	}
	return DB{Dir: dir}
}

// reportCounts counts the vulnerabilities of the Trivy report itself, what
// the JSON and SARIF reports are written from.
func reportCounts(r *Result) map[string]int {
	c := map[string]int{}
	for _, s := range Severities {
		c[s] = 0
	}
	for _, res := range r.Report.Results {
		for _, v := range res.Vulnerabilities {
			c[v.Severity]++
		}
	}
	return c
}

func ids(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.VulnerabilityID)
	}
	return out
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	img, db := testImage(t), testDB(t)

	res, err := Run(ctx, img, Options{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	// Most severe first; within a severity by package, then ID.
	if got, want := ids(res.Findings), []string{cveNext, cveDebFixed, cveDebUnfixed, cveReact}; !slices.Equal(got, want) {
		t.Fatalf("findings %v, want %v", got, want)
	}
	want := map[string]int{"CRITICAL": 1, "HIGH": 2, "MEDIUM": 1, "LOW": 0, "UNKNOWN": 0}
	if got := res.Counts(); !maps.Equal(got, want) || !maps.Equal(got, reportCounts(res)) {
		t.Errorf("counts %v, want %v (the report has %v)", got, want, reportCounts(res))
	}
	if got := ids(res.Matching([]string{"HIGH"})); !slices.Equal(got, []string{cveDebFixed, cveDebUnfixed}) {
		t.Errorf("matching HIGH: %v", got)
	}
	if got := res.Matching([]string{"LOW", "UNKNOWN"}); len(got) != 0 {
		t.Errorf("matching LOW, UNKNOWN: %v", got)
	}
	byID := map[string]Finding{}
	for _, f := range res.Findings {
		byID[f.VulnerabilityID] = f
	}
	if f := byID[cveDebUnfixed]; f.Fix() != "no fix" || f.Status != "affected" || f.Package != "libexample1" {
		t.Errorf("unfixed: %+v, fix %q", f, f.Fix())
	}
	if f := byID[cveNext]; f.Fix() != "15.5.30" || f.InstalledVersion != "15.5.29" || f.PkgPath != "app/node_modules/next/package.json" {
		t.Errorf("next: %+v, fix %q", f, f.Fix())
	}

	// The ignore file and ignore-unfixed leave findings out of the report as
	// well as the findings, so every output counts the same.
	ignore := filepath.Join(t.TempDir(), ".trivyignore")
	if err := os.WriteFile(ignore, []byte("# accepted\n"+cveNext+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = Run(ctx, img, Options{DB: db, IgnoreFile: ignore, IgnoreUnfixed: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res.Findings); !slices.Equal(got, []string{cveDebFixed, cveReact}) {
		t.Errorf("with the ignore file and ignore-unfixed: %v", got)
	}
	want = map[string]int{"CRITICAL": 0, "HIGH": 1, "MEDIUM": 1, "LOW": 0, "UNKNOWN": 0}
	if got := res.Counts(); !maps.Equal(got, want) || !maps.Equal(got, reportCounts(res)) {
		t.Errorf("counts %v, want %v (the report has %v)", got, want, reportCounts(res))
	}
}

func TestWriteSARIFCategory(t *testing.T) {
	ctx := context.Background()
	res, err := Run(ctx, testImage(t), Options{DB: testDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	read := func(category string) *sarif.Report {
		t.Helper()
		var buf bytes.Buffer
		if err := WriteSARIF(ctx, &buf, res.Report, category); err != nil {
			t.Fatal(err)
		}
		doc, err := sarif.FromBytes(buf.Bytes())
		if err != nil {
			t.Fatalf("%v\n%s", err, buf.Bytes())
		}
		if len(doc.Runs) != 1 || doc.Runs[0].Tool.Driver == nil || doc.Runs[0].Tool.Driver.Name != "Trivy" {
			t.Fatalf("SARIF runs: %+v", doc.Runs)
		}
		return doc
	}

	plain := read("")
	if plain.Runs[0].AutomationDetails != nil {
		t.Errorf("no category, yet automationDetails %+v", plain.Runs[0].AutomationDetails)
	}
	const category = "trivy/nextjs-ui-dashboard/linux-amd64/"
	doc := read(category)
	ad := doc.Runs[0].AutomationDetails
	if ad == nil || ad.ID == nil || *ad.ID != category {
		t.Fatalf("automationDetails %+v, want id %s", ad, category)
	}
	// Setting the category changes nothing else: same rules, same results.
	if len(doc.Runs[0].Results) != len(res.Findings) || len(doc.Runs[0].Results) != len(plain.Runs[0].Results) ||
		len(doc.Runs[0].Tool.Driver.Rules) != len(plain.Runs[0].Tool.Driver.Rules) || doc.Schema != plain.Schema {
		t.Errorf("with a category: %d results, %d rules; without: %d results, %d rules; %d findings",
			len(doc.Runs[0].Results), len(doc.Runs[0].Tool.Driver.Rules), len(plain.Runs[0].Results), len(plain.Runs[0].Tool.Driver.Rules), len(res.Findings))
	}
}

func TestWriteCounts(t *testing.T) {
	r := &Result{Findings: []Finding{{Severity: "CRITICAL"}, {Severity: "LOW"}, {Severity: "LOW"}}}
	var buf bytes.Buffer
	if err := WriteCounts(&buf, r.Counts()); err != nil {
		t.Fatal(err)
	}
	// Every severity is a key, so a reader need not know which are missing.
	if got, want := buf.String(), `{"CRITICAL":1,"HIGH":0,"LOW":2,"MEDIUM":0,"UNKNOWN":0}`+"\n"; got != want {
		t.Errorf("counts file %q, want %q", got, want)
	}
	var back map[string]int
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || !maps.Equal(back, r.Counts()) {
		t.Errorf("read back %v, %v", back, err)
	}
}

// TestSeveritiesAgree: the CLI validates --severity with pipelines/vuln and
// passes the names to Trivy; both lists must name the same severities.
func TestSeveritiesAgree(t *testing.T) {
	if !slices.Equal(vuln.Severities, Severities) {
		t.Errorf("pipelines/vuln has %v, trivy %v", vuln.Severities, Severities)
	}
}
