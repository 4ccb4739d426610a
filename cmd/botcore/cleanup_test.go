package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bot-core/delivery/cmd/botcore/internal/deploy"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/bot-core/delivery/pipelines/registry/registrytest"
	"github.com/bot-core/delivery/pipelines/release"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// platformsOf lists the platform manifests of the index repo@digest.
func platformsOf(t *testing.T, srv *registrytest.Server, repo, digest string) []string {
	t.Helper()
	ref, err := name.NewDigest(repo+"@"+digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref, remote.WithAuth(srv.Auth()))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range im.Manifests {
		out = append(out, m.Digest.String())
	}
	return out
}

// signPlatforms pushes a .sig and an .att for every platform manifest of
// the release tagged version, as build-all's sign --recursive and attest
// do, and returns those tags with their digests.
func signPlatforms(t *testing.T, srv *registrytest.Server, s seeded, version string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range platformsOf(t, srv, s.repo, s.digests[version]) {
		for _, kind := range []string{"sig", "att"} {
			tag := registry.CosignTag(p, kind)
			out[tag] = srv.PushImage(t, s.repo+":"+tag)
		}
	}
	return out
}

func TestCleanupKeepsDeployedReleases(t *testing.T) {
	srv := registrytest.NewBearer(t)
	s := seed(t, srv)
	env := envFor(t, srv)
	// Without protection, --keep 3 deletes v1.2.0 down to v1.0.0 (TestCleanup).
	doomedSigs := map[string]string{}
	for _, v := range []string{"v1.2.0", "v1.0.0"} {
		for tag, d := range signPlatforms(t, srv, s, v) {
			doomedSigs[tag] = d
		}
	}
	doomedSigs[registry.CosignTag(s.digests["v1.0.0"], "sig")] = s.digests[registry.CosignTag(s.digests["v1.0.0"], "sig")]
	deployedSigs := signPlatforms(t, srv, s, "v1.1.0")

	// The stack's directory: botcore deploy's state of the default compose
	// file and project, read without being named.
	dir := t.TempDir()
	t.Chdir(dir)
	img := func(version string) deploy.Image {
		return deploy.Image{Service: svc, Reference: s.repo + ":" + version, Digest: s.digests[version], Pinned: s.repo + "@" + s.digests[version]}
	}
	state := &deploy.State{
		Project:  "bot-core",
		Running:  &deploy.Release{Version: "v1.1.0", Images: []deploy.Image{img("v1.1.0")}},
		Previous: &deploy.Release{Version: "v1.0.2", Images: []deploy.Image{img("v1.0.2")}},
	}
	if err := state.Save(deploy.StateFile("docker-compose.prod.yml", "bot-core")); err != nil {
		t.Fatal(err)
	}
	// Another host's state, given explicitly.
	other := &deploy.State{Project: "bot-core", Running: &deploy.Release{Version: "v1.1.1", Images: []deploy.Image{img("v1.1.1")}}}
	otherFile := filepath.Join(dir, "other-host.json")
	if err := other.Save(otherFile); err != nil {
		t.Fatal(err)
	}
	// A release.json naming v1.0.3, and v1.1.2 protected by one of its
	// platform manifests.
	relFile := filepath.Join(dir, "release.json")
	plats := platformsOf(t, srv, s.repo, s.digests["v1.0.3"])
	rel := release.Manifest{Version: "v1.0.3", Services: []release.Service{{Name: svc, IndexDigest: s.digests["v1.0.3"], Platforms: map[string]string{"linux/amd64": plats[0], "linux/arm64": plats[1]}}}}
	b, err := rel.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(relFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	v112Platform := platformsOf(t, srv, s.repo, s.digests["v1.1.2"])[1]
	args := []string{"cleanup", "--keep", "3", "-s", svc, "--protect-state", otherFile, "--protect-release", relFile, "--protect", v112Platform}

	r := botcore(t, env, "", append([]string{"--json"}, args...)...)
	if r.code != 0 {
		t.Fatal(r)
	}
	var report cleanupReport
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	plan := report.Services[0].Plan
	var deleted []string
	for _, d := range plan.Delete {
		deleted = append(deleted, d.Tags[0])
	}
	if want := []string{"v1.2.0", "v1.0.0"}; !slices.Equal(deleted, want) {
		t.Errorf("plan deletes %v, want %v", deleted, want)
	}
	reasons := map[string]string{}
	for _, k := range plan.Kept {
		reasons[k.Tags[0]] = strings.Join(k.Reasons, "; ")
	}
	for tag, want := range map[string]string{
		"v1.1.0": "deployed v1.1.0 (state file .botcore-deploy.bot-core.json)",
		"v1.0.2": "rollback target v1.0.2 (state file .botcore-deploy.bot-core.json)",
		"v1.1.1": "deployed v1.1.1 (state file " + otherFile + ")",
		"v1.0.3": "release v1.0.3 (" + relFile + ")",
		"v1.1.2": "its platform manifest " + v112Platform[:19] + " is given with --protect",
	} {
		if reasons[tag] != want {
			t.Errorf("%s kept because %q, want %q", tag, reasons[tag], want)
		}
	}

	r = botcore(t, env, "", append(args, "--yes")...)
	if r.code != 0 || !strings.Contains(r.stdout, "deleted 2 releases (") ||
		!strings.Contains(r.stdout, "(deployed v1.1.0 (state file .botcore-deploy.bot-core.json))") {
		t.Fatalf("cleanup --yes: %s", r)
	}
	tags := srv.Tags(t, s.repo)
	for _, v := range []string{"v1.2.0", "v1.0.0"} {
		if slices.Contains(tags, v) || srv.Exists(t, s.repo, s.digests[v]) {
			t.Errorf("%s was not deleted", v)
		}
	}
	for tag, d := range doomedSigs {
		if slices.Contains(tags, tag) || srv.Exists(t, s.repo, d) {
			t.Errorf("attachment %s of a deleted release is still there", tag)
		}
	}
	for _, v := range []string{"v1.1.0", "v1.0.2", "v1.1.1", "v1.0.3", "v1.1.2", "v1.2.1", "v1.2.3"} {
		if !slices.Contains(tags, v) || !srv.Exists(t, s.repo, s.digests[v]) {
			t.Errorf("protected or kept %s was deleted", v)
		}
		for _, p := range platformsOf(t, srv, s.repo, s.digests[v]) {
			if !srv.Exists(t, s.repo, p) {
				t.Errorf("platform manifest %s of %s was deleted", p, v)
			}
		}
	}
	for tag := range deployedSigs {
		if !slices.Contains(tags, tag) {
			t.Errorf("attachment %s of the deployed release was deleted", tag)
		}
	}
}

// TestCleanupLeavesMovedTagsAlone moves a tag while cleanup --yes runs, as
// a release job would, through a proxy in front of the registry that moves
// it when the first deletion arrives.
func TestCleanupLeavesMovedTagsAlone(t *testing.T) {
	srv := registrytest.NewBasic(t)
	s := seed(t, srv)
	target, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			once.Do(func() { srv.Tag(t, s.repo, "v1.0.0", s.digests["v1.2.3"]) })
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	env := envFor(t, srv)
	env["DOCKER_REGISTRY"] = strings.TrimPrefix(front.URL, "http://") + "/bot"

	r := botcore(t, env, "", "cleanup", "--keep", "3", "-s", svc, "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "deleted 6 releases") ||
		!strings.Contains(r.stdout, "left 1 alone because the registry changed since the plan") {
		t.Fatalf("cleanup --yes: %s", r)
	}
	if want := fmt.Sprintf("left alone    %s  v1.0.0  (tag v1.0.0 moved since the plan)", shortDigest(s.digests["v1.0.0"])); !strings.Contains(r.stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
	}
	// v1.0.0's old digest and its signature stay: the plan that doomed
	// them no longer holds.
	if !srv.Exists(t, s.repo, s.digests["v1.0.0"]) || !slices.Contains(srv.Tags(t, s.repo), registry.CosignTag(s.digests["v1.0.0"], "sig")) {
		t.Error("the release whose tag moved was deleted")
	}
	if srv.Exists(t, s.repo, s.digests["v1.0.2"]) {
		t.Error("v1.0.2 was not deleted")
	}
}

func TestCleanupRefusesBadProtection(t *testing.T) {
	var requests atomic.Int32
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.NotFound(w, r)
	}))
	defer reg.Close()
	env := map[string]string{"DOCKER_REGISTRY": strings.TrimPrefix(reg.URL, "http://") + "/bot", "DOCKER_CONFIG": t.TempDir(), "HOME": t.TempDir()}

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notJSON := write("broken.json", "{")
	badDigest := write("bad-digest.json", `{"project":"bot-core","running":{"version":"v1","images":[{"service":"rust-core-engine","digest":"sha256:abc"}]}}`)
	noServices := write("release.json", `{"services":[]}`)
	missing := filepath.Join(dir, "missing.json")

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--protect", "v1.2.3"}, `--protect: "v1.2.3" is not an image digest (sha256:<64 hex digits>)`},
		{[]string{"--protect", "sha256:" + strings.Repeat("A", 64)}, `is not an image digest`},
		{[]string{"--protect-state", missing}, "--protect-state " + missing + ": no such file"},
		{[]string{"--protect-state", notJSON}, "--protect-state " + notJSON + ": deploy state " + notJSON + " is not valid JSON"},
		{[]string{"--protect-state", badDigest}, "deploy state " + badDigest + `, service rust-core-engine: "sha256:abc" is not an image digest`},
		{[]string{"--protect-release", missing}, "--protect-release: open " + missing + ": no such file or directory"},
		{[]string{"--protect-release", noServices}, "--protect-release " + noServices + ": release manifest lists no services"},
	}
	for _, tt := range tests {
		r := botcore(t, env, "", append([]string{"cleanup", "--keep", "1", "--yes"}, tt.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, tt.want) || strings.Contains(strings.TrimSpace(r.stderr), "\n") {
			t.Errorf("%v: %s\nwant %q", tt.args, r, tt.want)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("bad protections still sent %d registry requests", n)
	}
}
