package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bot-core/delivery/pipelines/labels"
	"github.com/bot-core/delivery/pipelines/registry/registrytest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// pullEnv is envFor with a DOCKER_HOST socket nobody listens on, so pull
// writes OCI layouts.
func pullEnv(t *testing.T, srv *registrytest.Server) map[string]string {
	env := envFor(t, srv)
	env["DOCKER_HOST"] = "unix://" + filepath.Join(t.TempDir(), "nobody.sock")
	return env
}

func seedRelease(t *testing.T, srv *registrytest.Server, service, version string) string {
	t.Helper()
	imageLabels := map[string]string{labels.LabelVersion: version}
	return srv.Push(t, srv.Host+"/bot/"+service+":"+version, registrytest.Index(t, imageLabels, base))
}

// checkLayout loads the OCI layout at dir and checks it holds exactly one
// entry, the index digest named version, with both platforms valid.
func checkLayout(t *testing.T, dir, digest, version string) {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("layout %s: %v", dir, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != digest ||
		im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != version {
		t.Fatalf("index.json of %s: %+v", dir, im.Manifests)
	}
	h, _ := v1.NewHash(digest)
	idx, err := top.ImageIndex(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Errorf("layout %s does not hold a valid index: %v", dir, err)
	}
	child, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, m := range child.Manifests {
		platforms = append(platforms, m.Platform.String())
	}
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("platforms in %s: %v", dir, platforms)
	}
}

func TestPullOCILayout(t *testing.T) {
	srv := registrytest.NewBasic(t)
	d1 := seedRelease(t, srv, "rust-core-engine", "v1.2.3")
	d2 := seedRelease(t, srv, "python-ai-service", "v1.2.3")
	env := pullEnv(t, srv)
	out := t.TempDir()
	args := []string{"pull", "--version", "v1.2.3", "--service", "rust-core-engine", "--service", "python-ai-service", "--output", out, "--insecure-skip-verify"}
	r := botcore(t, env, "", args...)
	if r.code != 0 {
		t.Fatal(r)
	}
	if !strings.Contains(r.stderr, "WARNING: --insecure-skip-verify: image signatures will NOT be verified") {
		t.Errorf("no warning about skipping verification:\n%s", r)
	}
	checkLayout(t, filepath.Join(out, "rust-core-engine"), d1, "v1.2.3")
	checkLayout(t, filepath.Join(out, "python-ai-service"), d2, "v1.2.3")
	for _, want := range []string{"no Docker engine (the Docker engine at unix://", "resolving " + srv.Host + "/bot/rust-core-engine:v1.2.3",
		"writing " + srv.Host + "/bot/python-ai-service:v1.2.3 (2 platforms) to " + filepath.Join(out, "python-ai-service")} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("progress lacks %q:\n%s", want, r)
		}
	}
	if !strings.Contains(r.stdout, "rust-core-engine") || !strings.Contains(r.stdout, "linux/amd64,linux/arm64") {
		t.Errorf("summary: %s", r)
	}

	// Pulling again replaces the entry instead of adding a second one.
	if r := botcore(t, env, "", append(args, "--json")...); r.code != 0 || !strings.Contains(r.stdout, `"into": "oci-layout"`) {
		t.Fatal(r)
	}
	checkLayout(t, filepath.Join(out, "rust-core-engine"), d1, "v1.2.3")

	// The default output is ./images/<service>.
	wd, _ := os.Getwd()
	tmp := t.TempDir()
	if err := os.Chdir(tmp); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.Chdir(wd) }()
	if r := botcore(t, env, "", "pull", "--version", "v1.2.3", "-s", "rust-core-engine", "--insecure-skip-verify"); r.code != 0 {
		t.Fatal(r)
	}
	checkLayout(t, filepath.Join(tmp, "images", "rust-core-engine"), d1, "v1.2.3")
}

func TestPullErrors(t *testing.T) {
	srv := registrytest.NewBasic(t)
	seedRelease(t, srv, "rust-core-engine", "v1.2.3")
	env := pullEnv(t, srv)
	out := t.TempDir()

	r := botcore(t, env, "", "pull", "--version", "v9.9.9", "-s", "rust-core-engine", "-o", out, "--insecure-skip-verify")
	want := "botcore: tag v9.9.9 does not exist in " + srv.Host + "/bot/rust-core-engine: run `botcore versions` to list the published tags\n"
	if r.code != 1 || !strings.HasSuffix(r.stderr, want) {
		t.Errorf("missing version: %s", r)
	}
	if _, err := os.Stat(filepath.Join(out, "rust-core-engine")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a layout was created for a missing version: %v", err)
	}

	r = botcore(t, env, "", "pull", "--version", "latest", "-o", out)
	if r.code != 1 || !strings.Contains(r.stderr, `invalid version "latest"`) {
		t.Errorf("invalid version: %s", r)
	}
	// Pull verifies by default: without a policy it refuses before
	// touching the output directory; --verify is accepted and changes
	// nothing.
	for _, extra := range [][]string{nil, {"--verify"}} {
		r = botcore(t, env, "", append([]string{"pull", "--version", "v1.2.3", "-o", out}, extra...)...)
		wantError(t, r, "pull verifies every image's signature, but no policy was given: pass --key, or --certificate-identity with --certificate-oidc-issuer, or --insecure-skip-verify")
	}
	r = botcore(t, env, "", "pull", "--version", "v1.2.3", "-o", out, "--certificate-identity", "ci@example.com")
	wantError(t, r, "pull: keyless verification needs the expected OIDC issuer", "add --certificate-oidc-issuer")
	r = botcore(t, env, "", "pull", "--version", "v1.2.3", "-o", out, "--trusted-root", "trusted_root.json")
	wantError(t, r, "pull: nothing to verify against", "give the key (--key) or the expected signer")
	for _, extra := range [][]string{{"--verify"}, {"--key", "cosign.pub"}, {"--certificate-identity", "ci@example.com"}, {"--trusted-root", "trusted_root.json"}} {
		r = botcore(t, env, "", append([]string{"pull", "--version", "v1.2.3", "-o", out, "--insecure-skip-verify"}, extra...)...)
		wantError(t, r, "--insecure-skip-verify contradicts --verify and the verification flags given")
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("a refused pull wrote %v", entries)
	}
	r = botcore(t, env, "", "pull")
	if r.code != 2 || !strings.Contains(r.stderr, "--version") {
		t.Errorf("no --version: %s", r)
	}
	env["DOCKER_PASSWORD"] = "wrong"
	r = botcore(t, env, "", "pull", "--version", "v1.2.3", "-s", "rust-core-engine", "-o", out, "--insecure-skip-verify")
	if r.code != 1 || !strings.Contains(r.stderr, "rejected the credentials") {
		t.Errorf("wrong password: %s", r)
	}
}

// fakeDocker serves the few Docker Engine API calls daemon.Write makes on
// a unix socket and records the tags of the image tarballs it is sent.
type fakeDocker struct {
	mu     sync.Mutex
	loaded []string
	arch   []string
}

func (f *fakeDocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Api-Version", "1.45")
	p := r.URL.Path
	switch {
	case p == "/_ping":
		_, _ = io.WriteString(w, "OK")
	case strings.HasSuffix(p, "/json") && strings.Contains(p, "/images/"):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"message":"No such image"}`)
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/images/load"):
		tr := tar.NewReader(r.Body)
		files := map[string][]byte{}
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(tr)
			files[h.Name] = b
		}
		var manifest []struct {
			Config   string
			RepoTags []string
		}
		_ = json.Unmarshal(files["manifest.json"], &manifest)
		f.mu.Lock()
		for _, m := range manifest {
			f.loaded = append(f.loaded, m.RepoTags...)
			var cf v1.ConfigFile
			_ = json.Unmarshal(files[m.Config], &cf)
			f.arch = append(f.arch, cf.Architecture)
		}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"stream":"Loaded image\n"}`)
	default:
		http.Error(w, "unexpected "+r.Method+" "+p, http.StatusNotFound)
	}
}

func TestPullIntoDocker(t *testing.T) {
	srv := registrytest.NewBasic(t)
	seedRelease(t, srv, "rust-core-engine", "v1.2.3")
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("no unix sockets here: %v", err)
	}
	fake := &fakeDocker{}
	hs := &http.Server{Handler: fake}
	go func() { _ = hs.Serve(l) }()
	defer hs.Close()

	env := envFor(t, srv)
	env["DOCKER_HOST"] = "unix://" + sock
	out := t.TempDir()
	r := botcore(t, env, "", "pull", "--version", "v1.2.3", "-s", "rust-core-engine", "-o", out, "--insecure-skip-verify")
	if r.code != 0 {
		t.Fatal(r)
	}
	ref := srv.Host + "/bot/rust-core-engine:v1.2.3"
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if !slices.Equal(fake.loaded, []string{ref}) || !slices.Equal(fake.arch, []string{runtime.GOARCH}) {
		t.Errorf("loaded %v (%v), want %s for %s", fake.loaded, fake.arch, ref, runtime.GOARCH)
	}
	if !strings.Contains(r.stderr, "Docker engine at unix://"+sock+" answers") {
		t.Errorf("progress: %s", r)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("wrote an OCI layout too: %v", entries)
	}
}
