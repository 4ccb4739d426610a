package e2e

import (
	"archive/tar"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"dagger.io/dagger"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bot-core/delivery/pipelines/release"
	"github.com/bot-core/delivery/pipelines/services"
)

// The release tags of v1.0.0 as docker/metadata-action would compute them.
var v100Tags = []string{"v1.0.0", "1.0.0", "1.0", "1", "latest"}

const testSHA = "0123456789abcdef0123456789abcdef01234567"

// startRegistry runs a registry (go-containerregistry's implementation of the
// distribution API) on 127.0.0.1 and returns its host:port. The engine pulls
// from it directly (loopback is plain HTTP); module code reaches it through
// --registry-service, as a laptop user would.
func startRegistry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

// daggerCallErr is daggerCall for calls expected to fail: it returns the
// error and the CLI's stderr.
func daggerCallErr(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	_, stderr, err := runDagger(t, dir, append([]string{"call", "--progress=plain"}, args...)...)
	return stderr, err
}

func readRelease(t *testing.T, dir string) release.Manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "release.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := release.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPipeline(t *testing.T) {
	reg := startRegistry(t)
	prefix := reg + "/bot-core"
	names := services.Default().Names()
	epoch := "1700000000"

	var published release.Manifest
	t.Run("build-all publishes one two-platform index per service", func(t *testing.T) {
		out := t.TempDir()
		daggerCall(t, "build-all", "--trivy-db", offlineDB(t), "--version", "v1.0.0", "--git-sha", testSHA, "--source-date-epoch", epoch,
			"--registry", prefix, "--registry-service", "tcp://"+reg, "--allow-unsigned", "export", "--path", out)
		published = readRelease(t, out)
		if !published.Published || published.Registry != prefix {
			t.Fatalf("release.json says published=%v registry=%q", published.Published, published.Registry)
		}
		if len(published.Services) != len(names) {
			t.Fatalf("release.json lists %d services, want %d", len(published.Services), len(names))
		}
		for _, s := range published.Services {
			repo, _ := name.NewRepository(prefix + "/" + s.Name)
			for _, tag := range v100Tags {
				d, err := remote.Head(repo.Tag(tag))
				if err != nil {
					t.Fatalf("%s:%s: %v", repo, tag, err)
				}
				if d.Digest.String() != s.IndexDigest {
					t.Errorf("%s:%s -> %s, want the release's index %s", repo, tag, d.Digest, s.IndexDigest)
				}
			}
			idx, err := remote.Index(repo.Digest(s.IndexDigest))
			if err != nil {
				t.Fatal(err)
			}
			im, _ := idx.IndexManifest()
			var plats []string
			for _, m := range im.Manifests {
				plats = append(plats, m.Platform.String())
				img, err := idx.Image(m.Digest)
				if err != nil {
					t.Fatal(err)
				}
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if cf.Architecture != m.Platform.Architecture {
					t.Errorf("%s %s: config says architecture %s", s.Name, m.Platform, cf.Architecture)
				}
				for k, want := range map[string]string{
					"org.opencontainers.image.version":  "v1.0.0",
					"org.opencontainers.image.revision": testSHA,
					"org.opencontainers.image.created":  "2023-11-14T22:13:20Z",
					"org.opencontainers.image.title":    s.Name,
				} {
					if got := cf.Config.Labels[k]; got != want {
						t.Errorf("%s %s: label %s = %q, want %q", s.Name, m.Platform, k, got, want)
					}
				}
				if cf.Config.User != "65532:65532" {
					t.Errorf("%s %s: runs as %q, want the non-root 65532:65532", s.Name, m.Platform, cf.Config.User)
				}
				if tool := compilerIn(t, img); tool != "" {
					t.Errorf("%s %s: runtime image contains a build tool: %s", s.Name, m.Platform, tool)
				}
			}
			slices.Sort(plats)
			if !slices.Equal(plats, []string{"linux/amd64", "linux/arm64"}) {
				t.Errorf("%s: index platforms %v, want exactly linux/amd64 and linux/arm64", s.Name, plats)
			}
		}
	})
	if published.Services == nil {
		t.FailNow()
	}

	t.Run("every image answers its health endpoint on both platforms", func(t *testing.T) {
		ctx, client, logs := connectSDK(t, 15*time.Minute)
		man := services.Default()
		for _, s := range published.Services {
			svc, _ := man.Select([]string{s.Name})
			for plat, digest := range s.Platforms {
				ref := prefix + "/" + s.Name + "@" + digest
				app := client.Container(dagger.ContainerOpts{Platform: dagger.Platform(plat)}).
					From(ref).
					AsService(dagger.ContainerAsServiceOpts{UseEntrypoint: true})
				url := fmt.Sprintf("http://app:%d%s", svc[0].Port, svc[0].Health)
				// The checker is the mirrored Python runtime: urllib, no curl needed.
				status, err := client.Container().
					From("python:3.13-slim-trixie").
					WithServiceBinding("app", app).
					WithEnvVariable("NONCE", fmt.Sprint(time.Now().UnixNano())).
					// Poll like a container health check: the service's port may
					// accept connections before the app (under QEMU for arm64) serves.
					WithExec([]string{"python3", "-c", `import sys, time, urllib.request
deadline = time.time() + 120
while True:
    try:
        r = urllib.request.urlopen(sys.argv[1], timeout=10)
        print(r.status, r.read().decode())
        break
    except Exception as e:
        if time.time() > deadline:
            raise
        time.sleep(0.5)`, url}).
					Stdout(ctx)
				if err != nil {
					t.Errorf("%s %s: health check: %v\n%s", s.Name, plat, err, tail(logs.String(), 30))
					continue
				}
				if !strings.HasPrefix(status, "200 ") {
					t.Errorf("%s %s: GET %s -> %q, want 200", s.Name, plat, svc[0].Health, status)
				}
			}
		}
	})

	t.Run("local default exports loadable OCI layouts and the same digests twice", func(t *testing.T) {
		var digests [2]map[string]string
		var configs map[string]string // "service os/arch" -> config digest, first local run
		for run := range 2 {
			out := t.TempDir()
			daggerCall(t, "build-all", "--trivy-db", offlineDB(t), "--version", "v1.0.0", "--git-sha", testSHA, "--source-date-epoch", epoch, "export", "--path", out)
			m := readRelease(t, out)
			if m.Published || m.Registry != "" {
				t.Fatalf("local build says published=%v registry=%q", m.Published, m.Registry)
			}
			digests[run] = map[string]string{}
			if run == 0 {
				configs = map[string]string{}
			}
			for _, s := range m.Services {
				digests[run][s.Name] = s.IndexDigest
				root, err := layout.ImageIndexFromPath(filepath.Join(out, s.Layout))
				if err != nil {
					t.Fatalf("%s: %v", s.Name, err)
				}
				rm, _ := root.IndexManifest()
				if len(rm.Manifests) != 1 || rm.Manifests[0].Digest.String() != s.IndexDigest {
					t.Fatalf("%s: layout index.json %+v does not hold the release's index %s", s.Name, rm.Manifests, s.IndexDigest)
				}
				idx, err := root.ImageIndex(rm.Manifests[0].Digest)
				if err != nil {
					t.Fatal(err)
				}
				im, _ := idx.IndexManifest()
				for _, d := range im.Manifests {
					img, err := idx.Image(d.Digest)
					if err != nil {
						t.Fatal(err)
					}
					// Loadable: every layer's bytes are present and match their digests.
					if err := validateLayers(img); err != nil {
						t.Errorf("%s %s: %v", s.Name, d.Platform, err)
					}
					if run == 0 {
						cfg, _ := img.ConfigName()
						configs[s.Name+" "+d.Platform.String()] = cfg.String()
					}
				}
			}
		}
		for svc, d := range digests[0] {
			if digests[1][svc] != d {
				t.Errorf("%s: built twice from the same source, got %s then %s", svc, d, digests[1][svc])
			}
		}
		// Against the published build (an earlier call, with a registry to
		// publish to): the same source and epoch give the same index digests.
		// The exporter's own times and platform order are taken out
		// (pipelines/reproducible); before that, configs matched but indexes
		// differed in 2 of 4 runs.
		for _, ps := range published.Services {
			if digests[0][ps.Name] != ps.IndexDigest {
				t.Errorf("%s: built locally as %s, published as %s from the same source", ps.Name, digests[0][ps.Name], ps.IndexDigest)
			}
			repo, _ := name.NewRepository(prefix + "/" + ps.Name)
			idx, err := remote.Index(repo.Digest(ps.IndexDigest))
			if err != nil {
				t.Fatal(err)
			}
			im, _ := idx.IndexManifest()
			for _, d := range im.Manifests {
				img, err := idx.Image(d.Digest)
				if err != nil {
					t.Fatal(err)
				}
				cfg, _ := img.ConfigName()
				key := ps.Name + " " + d.Platform.String()
				if configs[key] != cfg.String() {
					t.Errorf("%s: local image config %s differs from the published one %s of the same source", key, configs[key], cfg)
				}
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if got := cf.Created.Unix(); got != 1700000000 {
					t.Errorf("%s: config created %s, not the source date epoch", key, cf.Created)
				}
			}
		}
	})

	t.Run("one service for one platform still exports an index", func(t *testing.T) {
		out := t.TempDir()
		daggerCall(t, "build-all", "--trivy-db", offlineDB(t), "--version", "v1.0.0", "--services", "python-ai-service",
			"--platforms", "linux/arm64", "--source-date-epoch", epoch, "export", "--path", out)
		m := readRelease(t, out)
		if len(m.Services) != 1 || m.Services[0].Name != "python-ai-service" {
			t.Fatalf("release lists %+v, want python-ai-service only", m.Services)
		}
		s := m.Services[0]
		if len(s.Platforms) != 1 || s.Platforms["linux/arm64"] == "" {
			t.Fatalf("platforms %v, want linux/arm64 only", s.Platforms)
		}
		root, err := layout.ImageIndexFromPath(filepath.Join(out, s.Layout))
		if err != nil {
			t.Fatal(err)
		}
		rm, _ := root.IndexManifest()
		if len(rm.Manifests) != 1 || rm.Manifests[0].Digest.String() != s.IndexDigest || !rm.Manifests[0].MediaType.IsIndex() {
			t.Fatalf("layout index.json %+v, want the index %s", rm.Manifests, s.IndexDigest)
		}
	})

	t.Run("a failing service leaves every tag where it was", func(t *testing.T) {
		src := brokenCopy(t, "rust-core-engine")
		stderr, err := daggerCallErr(t, repoRoot(t), "--source", src, "build-all", "--trivy-db", offlineDB(t), "--version", "v1.0.1", "--git-sha", testSHA,
			"--registry", prefix, "--registry-service", "tcp://"+reg, "--allow-unsigned")
		if err == nil {
			t.Fatal("build-all succeeded with a broken rust-core-engine")
		}
		if !strings.Contains(stderr, "rust-core-engine") {
			t.Errorf("the error does not name the failing service:\n%s", tail(stderr, 30))
		}
		for _, s := range published.Services {
			repo, _ := name.NewRepository(prefix + "/" + s.Name)
			d, err := remote.Head(repo.Tag("latest"))
			if err != nil || d.Digest.String() != s.IndexDigest {
				t.Errorf("%s:latest moved (now %v, %v; was %s)", s.Name, d, err, s.IndexDigest)
			}
			if _, err := remote.Head(repo.Tag("v1.0.1")); err == nil {
				t.Errorf("%s:v1.0.1 exists although the release failed", s.Name)
			}
		}
	})

	t.Run("bad input fails before anything is built or pushed", func(t *testing.T) {
		t.Setenv("BOTCORE_TEST_KEY", "not-a-key")
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--version", "1.0"}, `"1.0"`},
			{[]string{"--version", "v1.0.0", "--services", "nope"}, `unknown service "nope"`},
			{[]string{"--version", "v1.0.0", "--platforms", "linux/s390x"}, `unsupported platform "linux/s390x"`},
			{[]string{"--version", "v1.0.0", "--registry", "ghcr.io/Acme/Bot Core"}, "invalid registry reference"},
			{[]string{"--version", "v1.0.0", "--severity", "HIGH,SEVERE"}, `unknown severity "SEVERE"`},
			{[]string{"--version", "v1.0.0", "--cosign-key", "env:BOTCORE_TEST_KEY", "--oidc-token", "env:BOTCORE_TEST_KEY"}, "not both"},
			{[]string{"--version", "v1.0.0", "--registry", "127.0.0.1:5999/bot-core"}, "or --allow-unsigned to publish unsigned images"},
		} {
			start := time.Now()
			stderr, err := daggerCallErr(t, repoRoot(t), append([]string{"build-all", "--trivy-db", offlineDB(t)}, c.args...)...)
			if err == nil || !strings.Contains(stderr, c.want) {
				t.Errorf("build-all %v: err=%v, want an error mentioning %s\n%s", c.args, err, c.want, tail(stderr, 15))
			}
			for _, step := range []string{"cargo build", "npm ci", "venv"} {
				if strings.Contains(stderr, step) {
					t.Errorf("build-all %v ran %q before failing", c.args, step)
				}
			}
			t.Logf("build-all %v failed in %s", c.args, time.Since(start).Round(time.Millisecond))
		}
		rustRepo, _ := name.NewRepository(prefix + "/rust-core-engine")
		tagsNow, err := remote.List(rustRepo)
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range tagsNow {
			if !slices.Contains(v100Tags, tg) {
				t.Errorf("unexpected tag %s after rejected input", tg)
			}
		}
	})
}

// compilerIn returns the path of the first build tool found in an image's
// layers, or "".
func compilerIn(t *testing.T, img v1.Image) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	tools := []string{"gcc", "cc", "g++", "c++", "rustc", "cargo", "clang", "go", "ld", "make"}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		dir, base := path.Split(strings.TrimPrefix(h.Name, "./"))
		if strings.HasSuffix(dir, "bin/") && slices.Contains(tools, base) {
			return h.Name
		}
	}
}

func validateLayers(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// sourceCopy copies the services manifest and examples into a temporary
// source tree (for --source).
func sourceCopy(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	cmd := exec.Command("sh", "-c", `tar -C "$0" --exclude=node_modules --exclude=.next --exclude=target -cf - services.yaml examples | tar -C "$1" -xf -`, repoRoot(t), dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("copy source: %v %s", err, out)
	}
	return dst
}

// brokenCopy is a sourceCopy with one service's code broken.
func brokenCopy(t *testing.T, broken string) string {
	t.Helper()
	dst := sourceCopy(t)
	man, err := os.ReadFile(filepath.Join(dst, "services.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := services.ParseManifest(man)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := m.Select([]string{broken})
	if err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dst, svc[0].Path, "src", "main.rs")
	if err := os.WriteFile(main, []byte("fn main() { this does not compile }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}
