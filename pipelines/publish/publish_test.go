package publish

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
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
	return faultyRegistry(t, func(w http.ResponseWriter, r *http.Request) bool {
		if reject != nil && reject(r) {
			http.Error(w, `{"errors":[{"code":"DENIED","message":"injected failure"}]}`, http.StatusForbidden)
			return true
		}
		return false
	})
}

// faultyRegistry is registryServer with a fault handler that may answer a
// request itself (or drop its connection) and then returns true.
func faultyRegistry(t *testing.T, fault func(http.ResponseWriter, *http.Request) bool) string {
	t.Helper()
	reg := registry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fault(w, r) {
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
	reg := Registry{Progress: func(f string, a ...any) { lines = append(lines, f) }}
	res, err := Release(ctx, reg, items, []string{"v1.0.0", "latest"}, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		want, _ := it.Index.Digest()
		if res.Pushed[i].Digest.DigestStr() != want.String() {
			t.Errorf("%s: result digest %s, want %s", it.Repo, res.Pushed[i].Digest.DigestStr(), want)
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
		if m, err := got.IndexManifest(); err != nil || len(m.Manifests) != 2 {
			t.Errorf("%s: pushed index %v, %v; want both platforms", it.Repo, m, err)
		}
	}
	if res.Done != StepTag || len(res.Tags) != 4 {
		t.Errorf("outcome: done %q, tags %v; want the tag step done and 4 tags", res.Done, res.Tags)
	}
	for _, o := range res.Tags {
		if o.State != TagMoved || o.Before != "" {
			t.Errorf("tag outcome %+v, want moved from nothing", o)
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
	if _, err := Release(ctx, Registry{}, []Item{{Repo: rust, Index: old}}, []string{"latest"}, Hooks{}); err != nil {
		t.Fatal(err)
	}
	oldDigest, _ := old.Digest()

	_, err := Release(ctx, Registry{}, []Item{{Repo: rust, Index: twoPlatformIndex(t)}, {Repo: python, Index: twoPlatformIndex(t)}}, []string{"v2.0.0", "latest"}, Hooks{})
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

// A signature that cannot be made stops the release after the push: the
// digests are in the registry, every tag stays where it was, and the steps
// ran in order.
func TestSigningFailureMovesNoTag(t *testing.T) {
	host := registryServer(t, nil)
	ctx := context.Background()
	rust, _ := name.NewRepository(host + "/bot-core/rust-core-engine")
	old := twoPlatformIndex(t)
	if _, err := Release(ctx, Registry{}, []Item{{Repo: rust, Index: old}}, []string{"latest"}, Hooks{}); err != nil {
		t.Fatal(err)
	}
	oldDigest, _ := old.Digest()

	next := twoPlatformIndex(t)
	var steps []string
	var signed []Result
	_, err := Release(ctx, Registry{}, []Item{{Repo: rust, Index: next}}, []string{"v2.0.0", "latest"}, Hooks{
		Step: func(s string) { steps = append(steps, s) },
		Sign: func(_ context.Context, pushed []Result) error {
			signed = pushed
			// What is signed must already resolve by digest.
			if _, err := remote.Head(pushed[0].Digest); err != nil {
				t.Errorf("signing %s before it is pushed: %v", pushed[0].Digest, err)
			}
			return errors.New("fulcio unreachable")
		},
	})
	if err == nil || !strings.Contains(err.Error(), "no tag was moved") || !strings.Contains(err.Error(), "fulcio unreachable") {
		t.Fatalf("error %v", err)
	}
	if want := []string{StepPush, StepSign}; !reflect.DeepEqual(steps, want) {
		t.Errorf("steps %v, want %v", steps, want)
	}
	if d, _ := next.Digest(); len(signed) != 1 || signed[0].Digest.DigestStr() != d.String() {
		t.Errorf("signed %v, want the pushed %s", signed, d)
	}
	if d, err := remote.Head(rust.Tag("latest")); err != nil || d.Digest != oldDigest {
		t.Errorf("latest = %v, %v; want the earlier %s", d, err, oldDigest)
	}
	if _, err := remote.Head(rust.Tag("v2.0.0")); err == nil {
		t.Error("v2.0.0 exists although signing failed")
	}
}

// countingPublisher records what a release asked of it.
type countingPublisher struct {
	calls []string
	short bool
}

func (c *countingPublisher) Push(_ context.Context, items []Item) ([]Result, error) {
	c.calls = append(c.calls, "push")
	if c.short {
		return nil, nil
	}
	return make([]Result, len(items)), nil
}

func (c *countingPublisher) Tag(context.Context, []Item, []Result, []string) ([]TagOutcome, error) {
	c.calls = append(c.calls, "tag")
	return nil, nil
}

// Release's order holds for any publisher: tag only after push and sign, and
// never when the publisher lost track of an item.
func TestReleaseOrderForAnyPublisher(t *testing.T) {
	p := &countingPublisher{}
	var order []string
	if _, err := Release(context.Background(), p, make([]Item, 2), []string{"latest"}, Hooks{
		Sign: func(context.Context, []Result) error { order = append(order, "sign"); return nil },
		Step: func(s string) { order = append(order, "step "+s) },
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"step publish", "step sign+attest", "sign", "step tag"}; !reflect.DeepEqual(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	short := &countingPublisher{short: true}
	if _, err := Release(context.Background(), short, make([]Item, 2), []string{"latest"}, Hooks{}); err == nil || slices.Contains(short.calls, "tag") {
		t.Errorf("a publisher that lost an item: err %v, calls %v", err, short.calls)
	}
}
