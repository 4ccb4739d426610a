package sbom

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/bot-core/delivery/cmd/botcore/internal/imagesrc"
)

func hash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

const (
	manifestDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	indexDigest    = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func TestDefaultNameAndVersion(t *testing.T) {
	idx := hash(t, indexDigest)
	for _, c := range []struct {
		img           imagesrc.Image
		name, version string
	}{
		// A registry image, or a layout whose annotations name one.
		{imagesrc.Image{Name: "ghcr.io/acme/bot-core/rust-core-engine:v1.2.3", Repository: "ghcr.io/acme/bot-core/rust-core-engine", Tag: "v1.2.3"},
			"ghcr.io/acme/bot-core/rust-core-engine", "v1.2.3"},
		// botcore pull writes DIR/<service>: the directory names the service.
		{imagesrc.Image{Name: "images/python-ai-service/", IndexDigest: &idx}, "python-ai-service", indexDigest},
		{imagesrc.Image{Name: "/ci/out/nextjs-ui-dashboard.tar.gz"}, "nextjs-ui-dashboard", manifestDigest},
		{imagesrc.Image{Name: "app.tgz", Tag: "v2.0.0"}, "app", "v2.0.0"},
		{imagesrc.Image{Name: "/tmp/app.tar"}, "app", manifestDigest},
	} {
		c.img.Digest = hash(t, manifestDigest)
		if got := DefaultName(&c.img); got != c.name {
			t.Errorf("DefaultName(%s) = %q, want %q", c.img.Name, got, c.name)
		}
		if got := DefaultVersion(&c.img); got != c.version {
			t.Errorf("DefaultVersion(%s) = %q, want %q", c.img.Name, got, c.version)
		}
	}
}

// TestGenerate catalogs a small real image and checks how the SPDX document
// names it: the document and its root package carry the name and version
// the caller gave (or the defaults), and the packages found are listed.
func TestGenerate(t *testing.T) {
	img, err := crane.Image(map[string][]byte{
		"etc/os-release":                     []byte("ID=debian\nVERSION_ID=\"13\"\n"),
		"app/node_modules/next/package.json": []byte(`{"name": "next", "version": "15.5.29", "license": "MIT"}`),
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
	src := &imagesrc.Image{Image: img, Name: "/out/nextjs-ui-dashboard.tar", Digest: d, Tag: "v1.2.3",
		Platform: v1.Platform{OS: "linux", Architecture: "amd64"}}

	for _, c := range []struct {
		opts          Options
		name, version string
	}{
		{Options{}, "nextjs-ui-dashboard", "v1.2.3"},
		{Options{Name: "ghcr.io/acme/bot-core/nextjs-ui-dashboard", Version: "v9.9.9"}, "ghcr.io/acme/bot-core/nextjs-ui-dashboard", "v9.9.9"},
	} {
		s, err := Generate(context.Background(), src, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteSPDX(&buf, s); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), `"spdxVersion": "SPDX-`+SPDXVersion+`"`) {
			t.Errorf("not an SPDX %s document:\n%.300s", SPDXVersion, buf.String())
		}
		var doc v2_3.Document
		if err := spdxjson.ReadInto(bytes.NewReader(buf.Bytes()), &doc); err != nil {
			t.Fatalf("tools-golang cannot read the document: %v", err)
		}
		if doc.DocumentName != c.name || !strings.Contains(doc.DocumentNamespace, "nextjs-ui-dashboard") {
			t.Errorf("%+v: document name %q, namespace %q; want the name %q", c.opts, doc.DocumentName, doc.DocumentNamespace, c.name)
		}
		versions := map[string]string{}
		for _, p := range doc.Packages {
			versions[p.PackageName] = p.PackageVersion
		}
		if versions[c.name] != c.version || versions["next"] != "15.5.29" {
			t.Errorf("%+v: packages %v, want %s %s and next 15.5.29", c.opts, versions, c.name, c.version)
		}
	}
}
