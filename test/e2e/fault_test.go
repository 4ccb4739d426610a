package e2e

import (
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bot-core/delivery/pipelines/publish"
	"github.com/bot-core/delivery/pipelines/release"
)

// faultyRegistry is startRegistry behind a switch the test flips: while
// refuse is set, the registry answers 500 to every request it picks.
func faultyRegistry(t *testing.T, refuse *atomic.Pointer[func(*http.Request) bool]) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := refuse.Load(); f != nil && (*f)(r) {
			http.Error(w, `{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}`, http.StatusInternalServerError)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

// tagsOf is every tag of every repository and the digest it names.
func tagsOf(t *testing.T, repos ...name.Repository) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, repo := range repos {
		tags, err := remote.List(repo)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range tags {
			d, err := remote.Head(repo.Tag(tag))
			if err != nil {
				t.Fatal(err)
			}
			out[repo.Tag(tag).String()] = d.Digest.String()
		}
	}
	return out
}

// TestFailedReleaseIsRecordedAndRolledBack publishes through build-all to a
// registry that refuses one service's first tag: the tags of every service
// end where they were before the run, the call still exports the release
// directory (--record-failure) with release.json saying so tag by tag, and
// check-release turns that record into the failure.
func TestFailedReleaseIsRecordedAndRolledBack(t *testing.T) {
	var refuse atomic.Pointer[func(*http.Request) bool]
	reg := faultyRegistry(t, &refuse)
	prefix := reg + "/faulty"
	svcs := []string{"rust-core-engine", "python-ai-service"}

	// An earlier release holds every moving tag of both services.
	var repos []name.Repository
	for _, s := range svcs {
		repo, _ := name.NewRepository(prefix + "/" + s)
		repos = append(repos, repo)
		idx, err := random.Index(256, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range []string{"v1.0.0", "1.0.0", "1.0", "1", "latest"} {
			if err := remote.WriteIndex(repo.Tag(tag), idx); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := tagsOf(t, repos...)

	pick := func(r *http.Request) bool {
		return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/python-ai-service/manifests/v1.1.0")
	}
	refuse.Store(&pick)
	out := filepath.Join(t.TempDir(), "dist")
	daggerCallLogs(t, "build-all", "--trivy-db", offlineDB(t), "--services", strings.Join(svcs, ","), "--platforms", "linux/amd64",
		"--version", "v1.1.0", "--git-sha", testSHA, "--registry", prefix, "--registry-service", "tcp://"+reg, "--allow-unsigned",
		"--record-failure", "export", "--path", out)
	refuse.Store(nil)

	if after := tagsOf(t, repos...); !maps.Equal(after, before) {
		t.Errorf("tags after the failed release:\n%v\nwant them as before:\n%v", after, before)
	}
	m := readRelease(t, out)
	if m.State != release.StateRolledBack || m.Published || !strings.Contains(m.Error, "python-ai-service:v1.1.0") {
		t.Errorf("release.json state %q, published %v, error %q; want rolled-back, unpublished, naming python-ai-service:v1.1.0", m.State, m.Published, m.Error)
	}
	states := map[publish.TagState]int{}
	for _, o := range m.Tagging {
		states[o.State]++
		if o.Target == "" || (o.State == publish.TagRestored && strings.HasSuffix(o.Tag, ":latest")) {
			t.Errorf("tag outcome %+v: latest moves last and cannot have moved", o)
		}
	}
	// rust's four version tags moved and were put back, python's refused
	// v1.1.0 is put back too (a refused PUT may have landed); the rest,
	// both latest tags included, never moved.
	if states[publish.TagRestored] != 5 || states[publish.TagNotMoved] != 5 || len(m.Tagging) != 10 {
		t.Errorf("tagging %+v, want 5 restored and 5 not moved", m.Tagging)
	}
	for _, s := range m.Services {
		if len(s.Reports) == 0 || s.IndexDigest == "" {
			t.Errorf("service %s: no reports or digest in the record of the failed release", s.Name)
		}
	}
	for _, f := range []string{"summary.md", "sarif/rust-core-engine_linux-amd64.sarif", "sbom/python-ai-service_linux-amd64.spdx.json"} {
		if !fileExists(filepath.Join(out, f)) {
			t.Errorf("the failed release exported no %s", f)
		}
	}

	stderr, err := daggerCallErr(t, repoRoot(t), "check-release", "--record", filepath.Join(out, "release.json"))
	if err == nil || !strings.Contains(stderr, "release v1.1.0 failed and was rolled back: no tag names it (state rolled-back)") {
		t.Errorf("check-release of the failed release: err %v\n%s", err, tail(stderr, 20))
	}
	// The same record, completed, passes.
	m.State, m.Error, m.Published = release.StateTagged, "", true
	js, _ := m.JSON()
	done := filepath.Join(t.TempDir(), "release.json")
	if err := os.WriteFile(done, js, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daggerCLI(t), "call", "-s", "check-release", "--record", done)
	cmd.Dir = repoRoot(t)
	if stdout, err := cmd.CombinedOutput(); err != nil ||
		!strings.Contains(string(stdout), "release v1.1.0: tagged") {
		t.Errorf("check-release of a completed release: %v\n%s", err, stdout)
	}
}

// TestPublishedVersionIsNotMoved: a release whose version already names
// another image stops before any tag moves (the record says so), and
// --force-retag moves it, recording where it was.
func TestPublishedVersionIsNotMoved(t *testing.T) {
	reg := startRegistry(t)
	prefix := reg + "/taken"
	repo, _ := name.NewRepository(prefix + "/rust-core-engine")
	old, err := random.Index(256, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(repo.Tag("v1.0.0"), old); err != nil {
		t.Fatal(err)
	}
	oldDigest, _ := old.Digest()
	before := tagsOf(t, repo)
	args := []string{"build-all", "--trivy-db", offlineDB(t), "--services", "rust-core-engine", "--platforms", "linux/amd64",
		"--version", "v1.0.0", "--git-sha", testSHA, "--registry", prefix, "--registry-service", "tcp://" + reg, "--allow-unsigned", "--record-failure"}

	out := filepath.Join(t.TempDir(), "refused")
	daggerCallLogs(t, append(args, "export", "--path", out)...)
	m := readRelease(t, out)
	if m.State != release.StatePushed || !strings.Contains(m.Error, "a published version is never moved to another image") ||
		!strings.Contains(m.Error, "--force-retag") || len(m.Tagging) != 0 {
		t.Errorf("release.json state %q error %q tagging %v; want pushed, refused with a --force-retag hint, no tag touched", m.State, m.Error, m.Tagging)
	}
	if after := tagsOf(t, repo); !maps.Equal(after, before) {
		t.Errorf("tags %v, want them as before %v", after, before)
	}

	out = filepath.Join(t.TempDir(), "forced")
	daggerCallLogs(t, append(args, "--force-retag", "export", "--path", out)...)
	m = readRelease(t, out)
	if m.State != release.StateTagged || m.Error != "" {
		t.Fatalf("release.json state %q error %q, want tagged", m.State, m.Error)
	}
	if got := tagsOf(t, repo)[repo.Tag("v1.0.0").String()]; got != m.Services[0].IndexDigest {
		t.Errorf("v1.0.0 = %s, want it moved to %s", got, m.Services[0].IndexDigest)
	}
	for _, o := range m.Tagging {
		if strings.HasSuffix(o.Tag, ":v1.0.0") && (o.Before != oldDigest.String() || o.State != publish.TagMoved) {
			t.Errorf("tagging %+v, want v1.0.0 moved from %s", o, oldDigest)
		}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
