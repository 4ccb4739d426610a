package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// checkSPDX parses doc as SPDX 2.3 JSON with tools-golang, validates it and
// returns the version of each package by name.
func checkSPDX(t *testing.T, doc []byte) (*v2_3.Document, map[string]string) {
	t.Helper()
	var head struct {
		SPDXVersion string `json:"spdxVersion"`
	}
	if err := json.Unmarshal(doc, &head); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if head.SPDXVersion != "SPDX-2.3" {
		t.Fatalf("spdxVersion %q, want SPDX-2.3", head.SPDXVersion)
	}
	var d v2_3.Document
	if err := spdxjson.ReadInto(bytes.NewReader(doc), &d); err != nil {
		t.Fatalf("tools-golang cannot read the document: %v", err)
	}
	latest, err := spdxjson.Read(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := spdxlib.ValidateDocument(latest); err != nil {
		t.Errorf("invalid SPDX document: %v", err)
	}
	if d.SPDXIdentifier != "DOCUMENT" || d.DataLicense != spdx.DataLicense || d.CreationInfo == nil || len(d.CreationInfo.Creators) == 0 {
		t.Errorf("document header: id %q license %q creation %+v", d.SPDXIdentifier, d.DataLicense, d.CreationInfo)
	}
	if _, err := spdxlib.GetDescribedPackageIDs(latest); err != nil {
		t.Errorf("the document describes no package: %v", err)
	}
	versions := map[string]string{}
	for _, p := range d.Packages {
		if p.PackageSPDXIdentifier == "" || p.PackageDownloadLocation == "" {
			t.Errorf("package %q lacks an SPDX ID or download location", p.PackageName)
		}
		versions[p.PackageName] = p.PackageVersion
	}
	return &d, versions
}

func TestSBOMLayout(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "sbom", "nextjs-ui-dashboard.spdx.json")
	r := botcore(t, nil, "", "sbom", "--layout", f.layout, "--output", out)
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("sbom: %s", r)
	}
	for _, want := range []string{"botcore: reading the OCI layout " + f.layout, "picked linux/amd64", "cataloging", "wrote the SPDX 2.3 SBOM of " + testRepo + " to " + out} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("progress lacks %q:\n%s", want, r.stderr)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	d, versions := checkSPDX(t, b)
	for name, v := range map[string]string{"next": "15.5.29", "react": "19.1.0", "libexample1": "1.0-1", "requests": "2.31.0"} {
		if versions[name] != v {
			t.Errorf("package %s has version %q, want %q (packages: %v)", name, versions[name], v, versions)
		}
	}
	if d.DocumentName != testRepo || !strings.Contains(d.DocumentNamespace, "nextjs-ui-dashboard") || !strings.HasPrefix(d.DocumentNamespace, "https://") {
		t.Errorf("document name %q, namespace %q", d.DocumentName, d.DocumentNamespace)
	}
	if versions[testRepo] != testVersion {
		t.Errorf("the image package %s has version %q, want %s", testRepo, versions[testRepo], testVersion)
	}

	// arm64, to stdout, named explicitly, with the --json summary left out
	// (the document is the output).
	r = botcore(t, nil, "", "--json", "sbom", "--layout", f.layout, "--platform", "linux/arm64", "--name", "nextjs-ui-dashboard")
	if r.code != 0 {
		t.Fatalf("sbom to stdout: %s", r)
	}
	d, versions = checkSPDX(t, []byte(r.stdout))
	if versions["next"] != "15.5.30" || d.DocumentName != "nextjs-ui-dashboard" {
		t.Errorf("arm64: name %q, next %q", d.DocumentName, versions["next"])
	}

	// With a file, --json prints a summary.
	r = botcore(t, nil, "", "--json", "sbom", "--layout", f.layout, "-o", out)
	var s sbomSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || r.code != 0 {
		t.Fatalf("%v: %s", err, r)
	}
	if s.SPDXVersion != "SPDX-2.3" || s.Platform != "linux/amd64" || s.Packages < 3 || s.Output != out || s.Name != testRepo {
		t.Errorf("summary %+v", s)
	}
}

func TestSBOMTarballAndSinglePlatform(t *testing.T) {
	f := newFixture(t)
	r := botcore(t, nil, "", "sbom", "--tarball", f.tarball)
	if r.code != 0 {
		t.Fatalf("tarball: %s", r)
	}
	d, versions := checkSPDX(t, []byte(r.stdout))
	if versions["next"] != "15.5.29" || versions["react"] != "19.1.0" || d.DocumentName != testRepo {
		t.Errorf("tarball: name %q, packages %v", d.DocumentName, versions)
	}

	// A layout with one arm64 image and no platform given: that image.
	dir := filepath.Join(t.TempDir(), "python-ai-service")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(testImage(t, arm64, appFiles("15.5.30"))); err != nil {
		t.Fatal(err)
	}
	r = botcore(t, nil, "", "sbom", "--layout", dir)
	if r.code != 0 || !strings.Contains(r.stderr, "picked linux/arm64") {
		t.Fatalf("single-platform layout: %s", r)
	}
	d, versions = checkSPDX(t, []byte(r.stdout))
	if versions["next"] != "15.5.30" || d.DocumentName != "python-ai-service" {
		t.Errorf("single-platform layout: name %q, packages %v", d.DocumentName, versions)
	}
	// ... but asking for amd64 is an error.
	r = botcore(t, nil, "", "sbom", "--layout", dir, "--platform", "linux/amd64")
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "has no linux/amd64 image (it has linux/arm64)") || r.stdout != "" {
		t.Errorf("missing platform: %s", r)
	}
}

func TestSBOMBadInput(t *testing.T) {
	r := botcore(t, nil, "", "sbom")
	if r.code != 2 || !strings.Contains(r.stderr, "botcore: sbom: no image given") {
		t.Errorf("no input: %s", r)
	}
	r = botcore(t, nil, "", "sbom", "x/y:z", "--tarball", "t.tar")
	if r.code != 2 || !strings.Contains(r.stderr, "more than one image given") {
		t.Errorf("two inputs: %s", r)
	}
}
