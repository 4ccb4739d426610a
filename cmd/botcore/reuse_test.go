package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/bot-core/delivery/cmd/botcore/internal/imagesrc"
	sbomlib "github.com/bot-core/delivery/cmd/botcore/internal/sbom"
	"github.com/bot-core/delivery/cmd/botcore/internal/scan"
)

// relabelled writes img, with release labels and another creation date, as
// a one-image layout: what a new version of unchanged sources is.
func relabelled(t *testing.T, img v1.Image, version string) (string, v1.Image) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Labels = map[string]string{"org.opencontainers.image.version": version}
	cf.Created = v1.Time{Time: cf.Created.AddDate(0, 1, 0)}
	out, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	out = mutate.Annotations(out, map[string]string{"org.opencontainers.image.version": version}).(v1.Image)
	dir := filepath.Join(t.TempDir(), "web")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(out, layout.WithPlatform(amd64)); err != nil {
		t.Fatal(err)
	}
	return dir, out
}

// removeLayers deletes img's layer blobs from its layout: a command that
// still succeeds on it read none of them.
func removeLayers(t *testing.T, dir string, img v1.Image) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Layers {
		if err := os.Remove(filepath.Join(dir, "blobs", l.Digest.Algorithm, l.Digest.Hex)); err != nil {
			t.Fatal(err)
		}
	}
}

// withoutRunFields drops what differs between two runs of one scan or SBOM:
// when it was made and its random identifiers.
func withoutRunFields(t *testing.T, path string, fields ...string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, f := range fields {
		parts := strings.Split(f, ".")
		m := doc
		for _, p := range parts[:len(parts)-1] {
			m, _ = m[p].(map[string]any)
		}
		if m == nil {
			t.Fatalf("%s has no %s", path, f)
		}
		delete(m, parts[len(parts)-1])
	}
	return doc
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A new version of unchanged sources differs from the last one only in its
// config (labels, dates): with a layer cache and a catalog cache its scan
// and SBOM read no layer, and still give what a full scan and SBOM of the
// new image give.
func TestScanAndSBOMOfARelabelledImageReuseTheLayers(t *testing.T) {
	f := newFixture(t)
	orig := testImage(t, amd64, appFiles("15.5.29"))
	v2, img := relabelled(t, orig, "v2.0.0")
	other, _ := relabelled(t, testImage(t, amd64, appFiles("15.5.30")), "v2.0.0")
	work := t.TempDir()
	out := func(name string) string { return filepath.Join(work, name) }
	layers, catalogs := out("layer-cache"), out("catalogs")

	// The full scan and SBOM of v2, for comparison.
	if r := botcore(t, nil, "", "scan", "--layout", v2, "--db-dir", f.db, "--json-report", out("full.json"), "--sarif", out("full.sarif")); r.code != 1 {
		t.Fatalf("full scan of v2: want the gate's exit 1, got %s", r)
	}
	if r := botcore(t, nil, "", "sbom", "--layout", v2, "--name", "web", "-o", out("full.spdx.json")); r.code != 0 {
		t.Fatalf("sbom of v2: %s", r)
	}

	// v1 (the fixture's amd64 image) fills the caches.
	r := botcore(t, nil, "", "--json", "scan", "--layout", f.layout, "--db-dir", f.db, "--layer-cache", layers)
	var sum scanSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || r.code != 1 {
		t.Fatalf("scan of v1 with a layer cache: want the gate's exit 1 and a summary (%v): %s", err, r)
	}
	if sum.Layers != (scan.Layers{Total: 1, Analyzed: 1}) {
		t.Errorf("first scan into an empty layer cache: layers %+v, want 1 of 1 analyzed", sum.Layers)
	}
	if r := botcore(t, nil, "", "sbom", "--layout", f.layout, "--catalog-cache", catalogs, "-o", out("v1.spdx.json")); r.code != 0 ||
		!strings.Contains(r.stderr, "cataloged "+f.layout) || !strings.Contains(r.stderr, "kept in "+catalogs) {
		t.Fatalf("sbom of v1 with a catalog cache: %s", r)
	}

	// v2 without its layer blobs: a command that succeeds read none.
	removeLayers(t, v2, img)
	r = botcore(t, nil, "", "--json", "scan", "--layout", v2, "--db-dir", f.db, "--layer-cache", layers,
		"--json-report", out("reused.json"), "--sarif", out("reused.sarif"))
	if r.code != 1 {
		t.Fatalf("scan of v2 from the layer cache: want the gate's exit 1, got %s", r)
	}
	sum = scanSummary{}
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("scan --json: %v\n%s", err, r)
	}
	if sum.Layers != (scan.Layers{Total: 1, Analyzed: 0}) {
		t.Errorf("scan from the layer cache: layers %+v, want 0 of 1 analyzed", sum.Layers)
	}
	full := withoutRunFields(t, out("full.json"), "CreatedAt", "ReportID")
	reused := withoutRunFields(t, out("reused.json"), "CreatedAt", "ReportID")
	if a, b := jsonOf(t, full), jsonOf(t, reused); a != b {
		t.Errorf("the report made from the layer cache differs from the full scan's:\nfull:\n%s\nreused:\n%s", a, b)
	}
	meta, _ := reused["Metadata"].(map[string]any)
	cfgDigest, _ := img.ConfigName()
	if meta["ImageID"] != cfgDigest.String() {
		t.Errorf("the reused report's ImageID is %v, want v2's config %s", meta["ImageID"], cfgDigest)
	}
	if a, b := withoutRunFields(t, out("full.sarif")), withoutRunFields(t, out("reused.sarif")); jsonOf(t, a) != jsonOf(t, b) {
		t.Errorf("the SARIF made from the layer cache differs from the full scan's")
	}

	r = botcore(t, nil, "", "sbom", "--layout", v2, "--name", "web", "--catalog-cache", catalogs, "-o", out("reused.spdx.json"))
	if r.code != 0 || !strings.Contains(r.stderr, "took the packages from the catalog of the same layers") {
		t.Fatalf("sbom of v2 from the catalog cache: %s", r)
	}
	a := withoutRunFields(t, out("full.spdx.json"), "documentNamespace", "creationInfo.created")
	b := withoutRunFields(t, out("reused.spdx.json"), "documentNamespace", "creationInfo.created")
	if x, y := jsonOf(t, a), jsonOf(t, b); x != y {
		t.Errorf("the SBOM made from the catalog differs from the full one:\nfull:\n%s\nreused:\n%s", x, y)
	}
	digest, _ := img.Digest()
	if doc := jsonOf(t, b); !strings.Contains(doc, digest.Hex) || b["name"] != "web" {
		t.Errorf("the SBOM made from the catalog does not name v2 (web, %s):\n%s", digest, doc)
	}

	// Other layers are cataloged, not taken from the cache.
	if r := botcore(t, nil, "", "sbom", "--layout", other, "--catalog-cache", catalogs, "-o", out("other.spdx.json")); r.code != 0 ||
		!strings.Contains(r.stderr, "cataloged "+other) {
		t.Errorf("sbom of an image with another layer: %s", r)
	}
	if n, _ := filepath.Glob(filepath.Join(catalogs, "*.syft.json")); len(n) != 2 {
		t.Errorf("catalog cache holds %v, want the two layer sets' catalogs", n)
	}
}

// A cached catalog that is not of the image's layers (a damaged cache) is
// refused with the file to delete, and leaves no SBOM behind.
func TestSBOMRefusesACatalogOfOtherLayers(t *testing.T) {
	v2, _ := relabelled(t, testImage(t, amd64, appFiles("15.5.29")), "v2.0.0")
	other, _ := relabelled(t, testImage(t, amd64, appFiles("15.5.30")), "v2.0.0")
	catalogs := t.TempDir()
	if r := botcore(t, nil, "", "sbom", "--layout", other, "--catalog-cache", catalogs, "-o", filepath.Join(t.TempDir(), "x.json")); r.code != 0 {
		t.Fatalf("sbom: %s", r)
	}
	cached, _ := filepath.Glob(filepath.Join(catalogs, "*.syft.json"))
	if len(cached) != 1 {
		t.Fatalf("catalog cache holds %v, want one catalog", cached)
	}
	opened, err := imagesrc.Open(t.Context(), imagesrc.Source{Layout: v2})
	if err != nil {
		t.Fatal(err)
	}
	defer opened.Close()
	key, err := sbomlib.CatalogKey(opened)
	if err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(catalogs, key+".syft.json")
	if err := os.Rename(cached[0], wrong); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "v2.spdx.json")
	r := botcore(t, nil, "", "sbom", "--layout", v2, "--catalog-cache", catalogs, "-o", out)
	if r.code != 1 || !strings.Contains(r.stderr, "the cached catalog "+wrong) || !strings.Contains(r.stderr, "is of other layers") || !strings.Contains(r.stderr, "delete it") {
		t.Errorf("sbom with a catalog of other layers in the cache: %s", r)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused catalog left an SBOM behind")
	}
}
