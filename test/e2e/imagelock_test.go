package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bot-core/delivery/pipelines/imagelock"
)

// mirrorAddr is the hermetic engine's docker.io mirror (hack/engine).
func mirrorAddr() string {
	if a := os.Getenv("BOTCORE_REGISTRY_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:5000"
}

// withMarker is every platform image of idx with one more layer holding
// /botcore-lock-marker: a base that moved under the same tag.
func withMarker(t *testing.T, idx v1.ImageIndex) v1.ImageIndex {
	t.Helper()
	marker, err := crane.Layer(map[string][]byte{"botcore-lock-marker": []byte("moved\n")})
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	out := mutate.IndexMediaType(empty.Index, ggcrtypes.OCIImageIndex)
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, marker); err != nil {
			t.Fatal(err)
		}
		out = mutate.AppendManifests(out, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: d.Platform}})
	}
	return out
}

// A base image named by a pinned lockfile stays what the build uses when
// its tag moves in the registry, until the lockfile is refreshed.
func TestImagesLockHoldsAMovedTag(t *testing.T) {
	mirror := mirrorAddr()
	// A repository of its own, so moving its tag disturbs no other test;
	// the engine reaches it as docker.io/botcore-e2e/python-runtime.
	tag := "moving-" + time.Now().UTC().Format("20060102150405")
	short := "botcore-e2e/python-runtime:" + tag
	moving, err := name.ParseReference(mirror+"/"+short, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := crane.Copy(mirror+"/library/python:3.13-slim-trixie", moving.String(), crane.Insecure); err != nil {
		t.Fatal(err)
	}
	first, err := crane.Digest(moving.String(), crane.Insecure)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	lockPath := filepath.Join(dir, imagelock.File)
	// A new image is added by writing its tag and refreshing.
	write := func(text string) {
		if err := os.WriteFile(lockPath, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("python-runtime: " + short + "\n")
	refresh := func() imagelock.Lock {
		out := filepath.Join(dir, "refreshed.lock")
		daggerCall(t, "--images-lock", lockPath, "lock-images", "export", "--path", out)
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		l, err := imagelock.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Pinned(); err != nil {
			t.Fatalf("a refreshed lockfile is not pinned: %v\n%s", err, data)
		}
		write(string(data))
		return l
	}

	t.Run("an unpinned entry stops the build", func(t *testing.T) {
		stderr, err := daggerCallErr(t, repoRoot(t), "--images-lock", lockPath, "build", "--service", "python-ai-service", "sync")
		if err == nil || !strings.Contains(stderr, "images.lock has no rust-builder image") {
			t.Fatalf("want the missing entries named, got %v\n%s", err, tail(stderr, 20))
		}
	})

	lock := refresh()
	if want := imagelock.Pin(short, first); lock[imagelock.PythonRuntime] != want {
		t.Fatalf("refresh pinned %s, want %s", lock[imagelock.PythonRuntime], want)
	}
	if lock.Tag(imagelock.RustBuilder) != imagelock.Defaults[imagelock.RustBuilder] {
		t.Errorf("roles the lockfile lacked should be the official tags, got %s", lock[imagelock.RustBuilder])
	}
	hasMarker := func() bool {
		out := daggerCall(t, "--images-lock", lockPath, "build", "--service", "python-ai-service", "--platform", "linux/amd64", "directory", "--path", "/", "entries")
		return strings.Contains(out, "botcore-lock-marker")
	}
	if hasMarker() {
		t.Fatal("the image built from the original base has the marker")
	}

	// The tag moves: same name, new content.
	src, err := remote.Index(moving)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(moving, withMarker(t, src)); err != nil {
		t.Fatal(err)
	}
	second, err := crane.Digest(moving.String(), crane.Insecure)
	if err != nil || second == first {
		t.Fatalf("the tag did not move: %s -> %s (%v)", first, second, err)
	}
	if hasMarker() {
		t.Fatal("the build followed the moved tag although the lockfile pins the old digest")
	}

	lock = refresh()
	if want := imagelock.Pin(short, second); lock[imagelock.PythonRuntime] != want {
		t.Fatalf("refresh after the move pinned %s, want %s", lock[imagelock.PythonRuntime], want)
	}
	if !hasMarker() {
		t.Fatal("after the refresh the build still uses the old base")
	}
}
