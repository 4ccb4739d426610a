package publish

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

var releaseServices = []string{"rust-core-engine", "python-ai-service", "nextjs-ui-dashboard"}

var releaseTags = []string{"v3.0.0", "3.0.0", "3.0", "3", "latest"}

// tagPut reports whether r moves a tag of service (a manifest PUT by tag,
// not by digest).
func tagPut(r *http.Request, service string) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/"+service+"/manifests/") &&
		!strings.Contains(r.URL.Path, "/manifests/sha256:")
}

// tagFixture is a registry holding release v2 of every service (tags v2.0.0,
// 2, latest), and a v3 release ready to publish.
type tagFixture struct {
	items  []Item
	v2, v3 map[string]string // service -> index digest
	// reject answers a request with an error (or drops it) and returns true.
	reject    func(http.ResponseWriter, *http.Request) bool
	mu        sync.Mutex
	tagsMoved []string // the order of tag PUTs the registry accepted
}

func newTagFixture(t *testing.T) *tagFixture {
	t.Helper()
	restoreBackoff = time.Millisecond
	t.Cleanup(func() { restoreBackoff = time.Second })
	f := &tagFixture{v2: map[string]string{}, v3: map[string]string{}}
	host := faultyRegistry(t, func(w http.ResponseWriter, r *http.Request) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.reject != nil && f.reject(w, r) {
			return true
		}
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") && !strings.Contains(r.URL.Path, "/manifests/sha256:") {
			parts := strings.Split(r.URL.Path, "/")
			f.tagsMoved = append(f.tagsMoved, parts[len(parts)-3]+":"+parts[len(parts)-1])
		}
		return false
	})
	ctx := context.Background()
	for _, s := range releaseServices {
		repo, _ := name.NewRepository(host + "/bot-core/" + s)
		v2 := twoPlatformIndex(t)
		if _, err := Release(ctx, Registry{}, []Item{{Repo: repo, Index: v2}}, []string{"v2.0.0", "2", "latest"}, Hooks{}); err != nil {
			t.Fatal(err)
		}
		d2, _ := v2.Digest()
		f.v2[s] = d2.String()
		v3 := twoPlatformIndex(t)
		d3, _ := v3.Digest()
		f.v3[s] = d3.String()
		f.items = append(f.items, Item{Repo: repo, Index: v3})
	}
	f.tagsMoved = nil
	return f
}

// setReject makes the registry answer 403 to the requests reject picks.
func (f *tagFixture) setReject(reject func(*http.Request) bool) {
	f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if reject(r) {
			http.Error(w, `{"errors":[{"code":"DENIED","message":"injected failure"}]}`, http.StatusForbidden)
			return true
		}
		return false
	})
}

func (f *tagFixture) setFault(fault func(http.ResponseWriter, *http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reject = fault
}

// dropConnection closes the client's connection without an answer, as a
// registry or proxy going away mid-request does.
func dropConnection(t *testing.T, w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	conn.Close()
}

// tagDigest is what repo:tag names now ("" when it does not exist).
func tagDigest(t *testing.T, it Item, tag string) string {
	t.Helper()
	d, err := remote.Head(it.Repo.Tag(tag))
	if registry.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatalf("%s:%s: %v", it.Repo, tag, err)
	}
	return d.Digest.String()
}

// wantV2Only checks that no tag names v3: the v2 tags are back, the new
// ones are gone.
func (f *tagFixture) wantV2Only(t *testing.T) {
	t.Helper()
	for _, it := range f.items {
		s := it.Repo.RepositoryStr()[len("bot-core/"):]
		for _, tag := range []string{"v2.0.0", "2", "latest"} {
			if got := tagDigest(t, it, tag); got != f.v2[s] {
				t.Errorf("%s:%s = %q, want v2's %s", s, tag, got, f.v2[s])
			}
		}
		for _, tag := range []string{"v3.0.0", "3.0.0", "3.0", "3"} {
			if got := tagDigest(t, it, tag); got != "" {
				t.Errorf("%s:%s = %s, want it deleted again", s, tag, got)
			}
		}
	}
}

func TestTagsMoveWithLatestLast(t *testing.T) {
	f := newTagFixture(t)
	res, err := Release(context.Background(), Registry{}, f.items, releaseTags, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range f.items {
		for _, tag := range releaseTags {
			if got := tagDigest(t, it, tag); got != res.Pushed[i].Digest.DigestStr() {
				t.Errorf("%s:%s = %s, want %s", it.Repo, tag, got, res.Pushed[i].Digest.DigestStr())
			}
		}
	}
	// Every version tag of every service before the first latest.
	n := len(f.items) * (len(releaseTags) - 1)
	if len(f.tagsMoved) != n+len(f.items) {
		t.Fatalf("tag PUTs %v", f.tagsMoved)
	}
	for i, m := range f.tagsMoved {
		if isLatest := strings.HasSuffix(m, ":latest"); isLatest != (i >= n) {
			t.Fatalf("latest is not last of all: %v", f.tagsMoved)
		}
	}
	// The same release again moves nothing.
	f.tagsMoved = nil
	if _, err := Release(context.Background(), Registry{}, f.items, releaseTags, Hooks{}); err != nil || len(f.tagsMoved) != 0 {
		t.Errorf("republishing: err %v, tag PUTs %v; want none", err, f.tagsMoved)
	}
}

// The case: every tag PUT of one service fails. The tags already
// moved on the other services are put back, the new ones deleted, and the
// error says so.
func TestTagFailureRollsBack(t *testing.T) {
	f := newTagFixture(t)
	f.setReject(func(r *http.Request) bool { return tagPut(r, "python-ai-service") })
	_, err := Release(context.Background(), Registry{}, f.items, releaseTags, Hooks{})
	var te *TagError
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T), want a *TagError", err, err)
	}
	if !strings.Contains(err.Error(), "python-ai-service:v3.0.0") || !strings.Contains(err.Error(), "put back") || len(te.Left()) != 0 {
		t.Errorf("error %q, left %v", err, te.Left())
	}
	f.wantV2Only(t)
	states := map[TagState]int{}
	for _, o := range te.Outcomes {
		states[o.State]++
	}
	// rust's four version tags moved and were put back, python's first PUT
	// failed (and is put back too: a failed PUT may have landed), the rest
	// never moved.
	if states[TagRestored] != 5 || states[TagNotMoved] != len(te.Outcomes)-5 || states[TagMoved]+states[TagLeft] != 0 {
		t.Errorf("outcomes %v", te.Outcomes)
	}
}

// Faults at different points of the tag step, each on one service: every
// tag of every service ends where it was, and the outcome Release returns
// says what happened to each.
func TestTagFaultsRollBack(t *testing.T) {
	isTag := func(r *http.Request, service, tag string) bool {
		return tagPut(r, service) && strings.HasSuffix(r.URL.Path, "/manifests/"+tag)
	}
	for _, tc := range []struct {
		name string
		// fault answers (or drops) the requests it picks.
		fault func(t *testing.T) func(http.ResponseWriter, *http.Request) bool
		// restored counts the tags moved (or possibly moved) before the fault.
		restored int
		cause    string
	}{
		{"the first tag PUT of a service fails", func(t *testing.T) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if isTag(r, "python-ai-service", "v3.0.0") {
					http.Error(w, `{"errors":[{"code":"DENIED","message":"injected failure"}]}`, http.StatusForbidden)
					return true
				}
				return false
			}
		}, 5, "python-ai-service:v3.0.0"},
		// latest moves last: every version tag of every service and rust's
		// latest have moved when python's latest is refused, and its
		// restore is refused too (the tag never moved, so it is where it was).
		{"a service's latest PUT fails", func(t *testing.T) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if isTag(r, "python-ai-service", "latest") {
					http.Error(w, `{"errors":[{"code":"DENIED","message":"injected failure"}]}`, http.StatusForbidden)
					return true
				}
				return false
			}
		}, 14, "python-ai-service:latest"},
		{"the connection drops mid-tagging", func(t *testing.T) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if isTag(r, "python-ai-service", "3.0") {
					dropConnection(t, w)
					return true
				}
				return false
			}
		}, 7, "python-ai-service:3.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTagFixture(t)
			f.setFault(tc.fault(t))
			out, err := Release(context.Background(), Registry{}, f.items, releaseTags, Hooks{})
			var te *TagError
			if !errors.As(err, &te) {
				t.Fatalf("error %v (%T), want a *TagError", err, err)
			}
			if !strings.Contains(err.Error(), tc.cause) || !strings.Contains(err.Error(), "no tag names this release") {
				t.Errorf("error %q, want it to name %s and say no tag names the release", err, tc.cause)
			}
			f.wantV2Only(t)
			if out.Done != StepPush || !slices.Equal(out.Tags, te.Outcomes) {
				t.Errorf("outcome done %q, tags %v; want the push done and the TagError's outcomes", out.Done, out.Tags)
			}
			states := map[TagState]int{}
			for _, o := range out.Tags {
				states[o.State]++
			}
			if states[TagRestored] != tc.restored || states[TagNotMoved] != len(out.Tags)-tc.restored {
				t.Errorf("states %v, want %d restored and the rest not moved", states, tc.restored)
			}
		})
	}
}

// --force-retag moves a published version on purpose, and the outcome
// records where it was.
func TestForceRetagMovesAPublishedVersion(t *testing.T) {
	f := newTagFixture(t)
	out, err := Release(context.Background(), Registry{ForceRetag: true}, f.items[:1], []string{"v2.0.0"}, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	s := "rust-core-engine"
	if got := tagDigest(t, f.items[0], "v2.0.0"); got != f.v3[s] {
		t.Errorf("v2.0.0 = %s, want it moved to %s", got, f.v3[s])
	}
	if len(out.Tags) != 1 || out.Tags[0].Before != f.v2[s] || out.Tags[0].State != TagMoved {
		t.Errorf("outcomes %+v, want v2.0.0 moved from %s", out.Tags, f.v2[s])
	}
}

// When the registry refuses the roll-back too, the error names each tag
// left and where it should point.
func TestTagRollBackThatFailsSaysWhatIsLeft(t *testing.T) {
	f := newTagFixture(t)
	f.setReject(func(r *http.Request) bool {
		// python's tags fail, and rust's new tags 3.0.0 and 3.0 cannot be
		// deleted again.
		return tagPut(r, "python-ai-service") ||
			(r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/rust-core-engine/manifests/3.0"))
	})
	_, err := Release(context.Background(), Registry{}, f.items, releaseTags, Hooks{})
	var te *TagError
	if !errors.As(err, &te) {
		t.Fatalf("error %v", err)
	}
	var left []string
	for _, o := range te.Left() {
		left = append(left, o.Tag[strings.LastIndex(o.Tag, "/")+1:])
	}
	if strings.Join(left, " ") != "rust-core-engine:3.0.0 rust-core-engine:3.0" {
		t.Errorf("left %v", left)
	}
	if msg := err.Error(); !strings.Contains(msg, "could not put back 2 tags") || !strings.Contains(msg, "did not exist (delete it)") {
		t.Errorf("error %q", msg)
	}
	// What could be restored was.
	if got := tagDigest(t, f.items[0], "v3.0.0"); got != "" {
		t.Errorf("rust-core-engine:v3.0.0 = %s, want deleted", got)
	}
}

// Ctrl-C in the middle of the tag step ends in the same roll-back.
func TestTagInterruptedRollsBack(t *testing.T) {
	f := newTagFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var lines int
	reg := Registry{Progress: func(format string, _ ...any) {
		if strings.HasPrefix(format, "tagging") {
			if lines++; lines == 7 {
				cancel()
			}
		}
	}}
	_, err := Release(ctx, reg, f.items, releaseTags, Hooks{})
	var te *TagError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "interrupted") || len(te.Left()) != 0 {
		t.Fatalf("error %v", err)
	}
	f.wantV2Only(t)
}

// A hotfix of an older line moves its own tags and leaves latest and the
// major tag on the newer release.
func TestHotfixLeavesLatestOnTheNewerRelease(t *testing.T) {
	f := newTagFixture(t) // v2.0.0, 2 and latest on v2
	var lines []string
	reg := Registry{Progress: func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) }}
	it := f.items[0]
	hotfix := []string{"v1.4.1", "1.4.1", "1.4", "1", "latest"}
	if _, err := Release(context.Background(), reg, []Item{it}, hotfix, Hooks{}); err != nil {
		t.Fatal(err)
	}
	s := it.Repo.RepositoryStr()[len("bot-core/"):]
	for _, tag := range []string{"v1.4.1", "1.4.1", "1.4", "1"} {
		if got := tagDigest(t, it, tag); got != f.v3[s] {
			t.Errorf("%s = %s, want the hotfix %s", tag, got, f.v3[s])
		}
	}
	if got := tagDigest(t, it, "latest"); got != f.v2[s] {
		t.Errorf("latest = %s, want it left on 2.0.0 (%s)", got, f.v2[s])
	}
	if !slices.ContainsFunc(lines, func(l string) bool {
		return strings.Contains(l, "leaving "+it.Repo.Tag("latest").String()+" where it is: the repository holds the newer 2.0.0")
	}) {
		t.Errorf("no line says latest was held: %v", lines)
	}
}

// A version tag that already names another image stops the tag step before
// anything moves; the same image again is fine.
func TestPublishedVersionIsNeverMoved(t *testing.T) {
	f := newTagFixture(t)
	_, err := Release(context.Background(), Registry{}, f.items, []string{"v2.0.0", "2", "latest"}, Hooks{})
	if !errors.Is(err, ErrVersionTaken) || !strings.Contains(err.Error(), "no tag was moved") || !strings.Contains(err.Error(), "rust-core-engine:v2.0.0 names") {
		t.Fatalf("error %v", err)
	}
	if len(f.tagsMoved) != 0 {
		t.Errorf("tags moved: %v", f.tagsMoved)
	}
	f.wantV2Only(t)
}
