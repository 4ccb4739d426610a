package publish

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// twoPlatformIndex is a small multi-platform index like build-all produces.
func twoPlatformIndex(t *testing.T) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

// registryServer runs go-containerregistry's registry (a real implementation
// of the distribution API) on loopback; reject lets a test fail requests.
func registryServer(t *testing.T, reject func(*http.Request) bool) string {
	t.Helper()
	reg := registry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reject != nil && reject(r) {
			http.Error(w, `{"errors":[{"code":"DENIED","message":"injected failure"}]}`, http.StatusForbidden)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

func TestReleasePushesByDigestThenTags(t *testing.T) {
	host := registryServer(t, nil)
	ctx := context.Background()
	var items []Item
	for _, svc := range []string{"rust-core-engine", "python-ai-service"} {
		repo, _ := name.NewRepository(host + "/bot-core/" + svc)
		items = append(items, Item{Repo: repo, Index: twoPlatformIndex(t)})
	}
	var lines []string
	res, err := Release(ctx, items, []string{"v1.0.0", "latest"}, func(f string, a ...any) { lines = append(lines, f) })
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		want, _ := it.Index.Digest()
		if res[i].Digest.DigestStr() != want.String() {
			t.Errorf("%s: result digest %s, want %s", it.Repo, res[i].Digest.DigestStr(), want)
		}
		for _, tag := range []string{"v1.0.0", "latest"} {
			d, err := remote.Head(it.Repo.Tag(tag))
			if err != nil {
				t.Fatalf("%s:%s: %v", it.Repo, tag, err)
			}
			if d.Digest != want {
				t.Errorf("%s:%s points to %s, want %s", it.Repo, tag, d.Digest, want)
			}
		}
		got, err := remote.Index(it.Repo.Digest(want.String()))
		if err != nil {
			t.Fatal(err)
		}
		plats, _ := Platforms(got)
		if len(plats) != 2 || plats["linux/amd64"] == "" || plats["linux/arm64"] == "" {
			t.Errorf("%s: platforms %v, want linux/amd64 and linux/arm64", it.Repo, plats)
		}
	}
	// Every push is logged before the first tag moves.
	firstTag := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "tagging") && firstTag < 0 {
			firstTag = i
		}
		if strings.HasPrefix(l, "pushing") && firstTag >= 0 {
			t.Fatalf("push logged after a tag moved: %v", lines)
		}
	}
}

// A release whose second service cannot be pushed leaves every tag where it
// was: the first service's earlier release keeps "latest".
func TestReleaseFailureMovesNoTag(t *testing.T) {
	host := registryServer(t, func(r *http.Request) bool {
		return strings.Contains(r.URL.Path, "/python-ai-service/manifests/sha256:")
	})
	ctx := context.Background()
	rust, _ := name.NewRepository(host + "/bot-core/rust-core-engine")
	python, _ := name.NewRepository(host + "/bot-core/python-ai-service")

	old := twoPlatformIndex(t)
	if _, err := Release(ctx, []Item{{Repo: rust, Index: old}}, []string{"latest"}, nil); err != nil {
		t.Fatal(err)
	}
	oldDigest, _ := old.Digest()

	_, err := Release(ctx, []Item{{Repo: rust, Index: twoPlatformIndex(t)}, {Repo: python, Index: twoPlatformIndex(t)}}, []string{"v2.0.0", "latest"}, nil)
	if err == nil || !strings.Contains(err.Error(), "python-ai-service") || !strings.Contains(err.Error(), "no tags were moved") {
		t.Fatalf("error %v, want it to name python-ai-service and say no tags were moved", err)
	}
	d, err := remote.Head(rust.Tag("latest"))
	if err != nil || d.Digest != oldDigest {
		t.Fatalf("rust-core-engine:latest = %v, %v; want the earlier %s", d, err, oldDigest)
	}
	if _, err := remote.Head(rust.Tag("v2.0.0")); err == nil {
		t.Fatal("rust-core-engine:v2.0.0 exists although the release failed")
	}
}

// A layout holding a bare image (not an index) is refused with a clear
// error, and one holding an index loads with its platforms.
func TestLoadIndex(t *testing.T) {
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	bare := t.TempDir()
	p, err := layout.Write(bare, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIndex(bare); err == nil || !strings.Contains(err.Error(), "one image index") {
		t.Fatalf("bare image layout: error %v", err)
	}

	dir := t.TempDir()
	idx := twoPlatformIndex(t)
	p, err = layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	got, err := LoadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := idx.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("loaded %s, want %s", d, want)
	}
}
