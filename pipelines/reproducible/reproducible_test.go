package reproducible

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func image(t *testing.T, files ...string) Image {
	t.Helper()
	img := empty.Image
	for _, f := range files {
		l, err := crane.Layer(map[string][]byte{"f": []byte(f)})
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "COPY " + f}}); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Labels = map[string]string{"org.opencontainers.image.version": "v1.0.0"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	mf, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cf, _ = img.ConfigFile()
	return Image{Manifest: *mf, Config: *cf}
}

func TestDiffNamesTheLayerThatChanged(t *testing.T) {
	release := image(t, "base", "deps", "app")
	if d := Diff(release, image(t, "base", "deps", "app")); len(d) != 0 {
		t.Fatalf("the same image differs: %v", d)
	}
	d := Diff(release, image(t, "base", "deps", "app!"))
	if len(d) != 1 || !strings.HasPrefix(d[0], "layer 3 of 3 differs:") || !strings.Contains(d[0], "other content; made by: COPY app!") {
		t.Fatalf("one changed layer: %v", d)
	}
	d = Diff(release, image(t, "base", "deps", "app", "extra"))
	if len(d) != 1 || !strings.Contains(d[0], "layer 4 of 4: only in the rebuild") {
		t.Fatalf("one more layer: %v", d)
	}

	relabelled := image(t, "base", "deps", "app")
	relabelled.Config.Config.Labels["org.opencontainers.image.version"] = "v1.0.1"
	d = Diff(release, relabelled)
	if len(d) != 1 || d[0] != `config: label org.opencontainers.image.version "v1.0.0" in the release, "v1.0.1" rebuilt` {
		t.Fatalf("a label: %v", d)
	}

	recompressed := image(t, "base", "deps", "app")
	recompressed.Manifest.Layers[0].Digest.Hex = strings.Repeat("0", 64)
	d = Diff(release, recompressed)
	if len(d) != 1 || !strings.Contains(d[0], "layer 1 of 3 differs") || !strings.Contains(d[0], "the same content compressed differently") {
		t.Fatalf("a recompressed layer: %v", d)
	}
}

// A config that differs only where Diff has no comparison of its own (a
// history entry, a field another tool wrote) is named by its JSON path.
func TestDiffNamesTheConfigFieldThatChanged(t *testing.T) {
	release := image(t, "base", "app")
	rebuilt := image(t, "base", "app")
	rebuilt.Config.History = append([]v1.History(nil), rebuilt.Config.History...)
	rebuilt.Config.History[1].CreatedBy = "COPY app # again"
	rebuilt.Manifest.Config.Digest.Hex = strings.Repeat("1", 64)
	d := Diff(release, rebuilt)
	if len(d) != 1 || !strings.Contains(d[0], `history[1].created_by is "COPY app" in the release, "COPY app # again" rebuilt`) {
		t.Fatalf("a history entry: %v", d)
	}

	other := image(t, "base", "app")
	other.RawConfig = []byte(`{"architecture":"amd64","os":"linux","moby.buildkit.cache.v0":"x"}`)
	release.RawConfig = []byte(`{"architecture":"amd64","os":"linux"}`)
	other.Manifest.Config.Digest.Hex = strings.Repeat("2", 64)
	d = Diff(release, other)
	if len(d) != 1 || !strings.Contains(d[0], `moby.buildkit.cache.v0 is absent in the release, "x" rebuilt`) {
		t.Fatalf("a field v1.ConfigFile does not know: %v", d)
	}
}
