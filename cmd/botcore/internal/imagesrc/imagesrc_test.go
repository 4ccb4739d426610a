package imagesrc

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func platformImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// writeLayout writes one index per entry of tags (annotated with that tag)
// holding an image per platform, plus a buildkit-style attestation
// manifest.
func writeLayout(t *testing.T, tags []string, platforms ...v1.Platform) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		var adds []mutate.IndexAddendum
		for _, pl := range platforms {
			pl := pl
			adds = append(adds, mutate.IndexAddendum{Add: platformImage(t, pl), Descriptor: v1.Descriptor{Platform: &pl}})
		}
		att := v1.Platform{OS: "unknown", Architecture: "unknown"}
		adds = append(adds, mutate.IndexAddendum{Add: platformImage(t, att), Descriptor: v1.Descriptor{Platform: &att}})
		idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
		if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
			annotationRefName:       tag,
			annotationContainerdRef: "ghcr.io/acme/bot-core/rust-core-engine:" + tag,
		})); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestOpenLayoutPlatforms(t *testing.T) {
	ctx := context.Background()
	armv8 := v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	armv7 := v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	dir := writeLayout(t, []string{"v1.0.0"}, armv8, armv7)

	for _, c := range []struct {
		platform string
		want     string
		err      string
	}{
		{"linux/arm64", "linux/arm64/v8", ""},
		{"linux/arm64/v8", "linux/arm64/v8", ""},
		{"linux/arm/v7", "linux/arm/v7", ""},
		{"linux/arm/v6", "", "has no linux/arm/v6 image (it has linux/arm64/v8, linux/arm/v7)"},
		// No platform: linux/amd64 is not there and there are two others.
		{"", "", "has no linux/amd64 image (it has linux/arm64/v8, linux/arm/v7)"},
	} {
		p, err := ParsePlatform(c.platform)
		if err != nil {
			t.Fatal(err)
		}
		img, err := Open(ctx, Source{Layout: dir, Platform: p})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.platform, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", c.platform, err)
		}
		if img.Platform.String() != c.want || img.IndexDigest == nil ||
			img.Reference() != "ghcr.io/acme/bot-core/rust-core-engine:v1.0.0" || img.Tag != "v1.0.0" {
			t.Errorf("%q: picked %s, reference %s, tag %s", c.platform, img.Platform.String(), img.Reference(), img.Tag)
		}
		if d, err := img.Image.Digest(); err != nil || d != img.Digest {
			t.Errorf("%q: digest %s, image digest %s (%v)", c.platform, img.Digest, d, err)
		}
	}

	// The missing platform comes back as a PlatformError, for the caller
	// to say how to pick another.
	_, err := Open(ctx, Source{Layout: dir, Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}})
	var perr *PlatformError
	if !errors.As(err, &perr) || perr.Single || perr.Want != "linux/s390x" || !slices.Equal(perr.Have, []string{"linux/arm64/v8", "linux/arm/v7"}) ||
		perr.Source != "the OCI layout "+dir {
		t.Errorf("missing platform: %#v", err)
	}

	// Two releases in one layout: ambiguous, named by their tags.
	two := writeLayout(t, []string{"v1.0.0", "v1.1.0"}, v1.Platform{OS: "linux", Architecture: "amd64"})
	_, err = Open(ctx, Source{Layout: two})
	if err == nil || !strings.Contains(err.Error(), "holds 2 different linux/amd64 images (ghcr.io/acme/bot-core/rust-core-engine:v1.0.0, ghcr.io/acme/bot-core/rust-core-engine:v1.1.0): keep one image per layout") {
		t.Errorf("two releases: %v", err)
	}
}

func TestParsePlatform(t *testing.T) {
	for _, s := range []string{"linux", "/amd64", "linux/amd64/v1/x", "linux/"} {
		if _, err := ParsePlatform(s); err == nil || !strings.Contains(err.Error(), "give OS/ARCH[/VARIANT]") {
			t.Errorf("%q: %v", s, err)
		}
	}
	if p, err := ParsePlatform(""); p != nil || err != nil {
		t.Errorf(`"": %v %v`, p, err)
	}
}

// TestPlatformVariants pins how a wanted platform matches what an index
// declares: go-containerregistry's Satisfies (what the request leaves out
// is free, what it names must match), except that an arm64 image without a
// variant counts as arm64/v8.
func TestPlatformVariants(t *testing.T) {
	ctx := context.Background()
	plain := writeLayout(t, []string{"v1.0.0"}, v1.Platform{OS: "linux", Architecture: "arm64"}, v1.Platform{OS: "linux", Architecture: "amd64"})
	v8 := writeLayout(t, []string{"v1.0.0"}, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})
	win := writeLayout(t, []string{"v1.0.0"}, v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2527"})
	for _, c := range []struct {
		dir, platform, want string
	}{
		{plain, "linux/arm64", "linux/arm64"},
		{plain, "linux/arm64/v8", "linux/arm64"}, // the implied variant
		{plain, "linux/arm64/v9", ""},
		{v8, "linux/arm64", "linux/arm64/v8"},
		{v8, "linux/arm64/v8", "linux/arm64/v8"},
		{v8, "linux/arm64/v7", ""},
		{win, "windows/amd64", "windows/amd64:10.0.20348.2527"},
		{win, "windows/amd64:10.0.20348.2527", "windows/amd64:10.0.20348.2527"},
		{win, "windows/amd64:10.0.17763.1", ""}, // an OS version, when given, must match
	} {
		p, err := ParsePlatform(c.platform)
		if err != nil {
			t.Fatal(err)
		}
		img, err := Open(ctx, Source{Layout: c.dir, Platform: p})
		var perr *PlatformError
		switch {
		case c.want == "" && !errors.As(err, &perr):
			t.Errorf("%s: want a PlatformError, got %v", c.platform, err)
		case c.want != "" && err != nil:
			t.Errorf("%s: %v", c.platform, err)
		case c.want != "" && img.Platform.String() != c.want:
			t.Errorf("%s: picked %s, want %s", c.platform, img.Platform.String(), c.want)
		}
	}
}
