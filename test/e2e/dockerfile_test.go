package e2e

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bot-core/delivery/test/sigstoretest"
)

// A service built from its own multi-stage Dockerfile goes through the
// release as a native one does. The fixture (testdata/dockerfile-service) is
// http-server from the npm registry behind a Dockerfile shaped like many Node
// services' own: dependencies installed in a build-platform stage with a
// registry token mounted as a build secret, a target stage, a build argument,
// a non-root USER, ENTRYPOINT/CMD and a HEALTHCHECK of its own.
func TestDockerfileService(t *testing.T) {
	src := filepath.Join(repoRoot(t), "test", "e2e", "testdata", "dockerfile-service")
	const token = "planted-npm-token-2b7e91c4d0"
	// The secret's name is the id the Dockerfile mounts.
	t.Setenv("npm_token", token)
	reg := startRegistry(t)
	prefix := reg + "/own"
	kp := sigstoretest.NewKeyPair(t, "")
	t.Setenv("BOTCORE_TEST_COSIGN_KEY", string(kp.PrivatePEM))
	call := []string{"--source", src, "--tool", hostTool(t).path, "build-all", "--trivy-db", offlineDB(t),
		"--version", "v1.2.0", "--source-date-epoch", "1700000000", "--registry", prefix, "--registry-service", "tcp://" + reg,
		"--cosign-key", "env:BOTCORE_TEST_COSIGN_KEY", "--no-tlog"}

	t.Run("a secret the Dockerfile mounts must be given", func(t *testing.T) {
		stderr, err := daggerCallErr(t, repoRoot(t), append(call, "export", "--path", t.TempDir())...)
		if err == nil {
			t.Fatal("build-all ran without the build secret services.yaml lists")
		}
		for _, want := range []string{"build secret npm_token (listed under secrets: of web) was not given", "--build-secrets env://npm_token"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("the error does not say %q:\n%s", want, tail(stderr, 20))
			}
		}
		if strings.Contains(stderr, "stage build") {
			t.Errorf("a build started before the secrets were checked:\n%s", tail(stderr, 20))
		}
	})

	out := t.TempDir()
	stderr, err := daggerCallErr(t, repoRoot(t), append(call, "--build-secrets", "env://npm_token", "export", "--path", out)...)
	if err != nil {
		t.Fatalf("build-all of the Dockerfile service: %v\n%s", err, tail(stderr, 60))
	}
	t.Log(stageTime(stderr, "build"))
	rel := readRelease(t, out)
	if rel.StartCheck == nil {
		t.Fatal("release.json has no startCheck")
	}
	if len(rel.Services) != 1 || rel.Services[0].Name != "web" || len(rel.Services[0].Platforms) != 2 {
		t.Fatalf("release.json services %+v, want web on two platforms", rel.Services)
	}
	svc := rel.Services[0]
	repo := prefix + "/web"
	images := map[string]v1.Image{}
	for plat, d := range svc.Platforms {
		ref, err := name.ParseReference(repo + "@" + d)
		if err != nil {
			t.Fatal(err)
		}
		if images[plat], err = remote.Image(ref); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("the image is what the Dockerfile declares, with the release labels", func(t *testing.T) {
		for plat, img := range images {
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			c := cf.Config
			if cf.OS+"/"+cf.Architecture != plat {
				t.Errorf("%s: the image is %s/%s", plat, cf.OS, cf.Architecture)
			}
			if !slices.Equal(c.Entrypoint, []string{"node", "/srv/node_modules/http-server/bin/http-server"}) ||
				!slices.Equal(c.Cmd, []string{"/srv/public", "-p", "8080"}) || c.User != "1000:1000" || c.WorkingDir != "/srv" {
				t.Errorf("%s: entrypoint %q, cmd %q, user %q, workdir %q: not the Dockerfile's", plat, c.Entrypoint, c.Cmd, c.User, c.WorkingDir)
			}
			if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
				t.Errorf("%s: exposed ports %v", plat, c.ExposedPorts)
			}
			if c.Labels["org.opencontainers.image.version"] != "v1.2.0" || c.Labels["org.opencontainers.image.title"] != "web" {
				t.Errorf("%s: labels %v", plat, c.Labels)
			}
			checkDeclaredHealthcheck(t, img, plat, []string{probePath, "http://127.0.0.1:8080/"})
			files := imageFiles(t, img, "srv/token-length", "srv/site-title", "srv/node_modules/http-server/package.json")
			// BuildKit keys no cache on a secret's value, so a step cached by
			// an earlier build with another token keeps that one's length.
			if n, err := strconv.Atoi(strings.TrimSpace(files["srv/token-length"])); err != nil || n <= 0 {
				t.Errorf("%s: the RUN step saw a secret of %q bytes (the secret was not mounted)", plat, files["srv/token-length"])
			}
			if got := strings.TrimSpace(files["srv/site-title"]); got != "built-by-build-all" {
				t.Errorf("%s: build argument SITE_TITLE arrived as %q", plat, got)
			}
			var pkg struct{ Name, Version string }
			if err := json.Unmarshal([]byte(files["srv/node_modules/http-server/package.json"]), &pkg); err != nil || pkg.Version != "14.1.1" {
				t.Errorf("%s: node_modules/http-server is %+v (%v), want 14.1.1 from the lockfile", plat, pkg, err)
			}
		}
	})

	t.Run("the start-up gate ran the Dockerfile's entrypoint on both platforms", func(t *testing.T) {
		for _, plat := range []string{"linux/amd64", "linux/arm64"} {
			got := rel.StartCheck.Results["web "+plat]
			// The prober the pipeline put into the image answered.
			if !strings.HasPrefix(got, "healthy after") || !strings.Contains(got, "GET http://127.0.0.1:8080/ answered 200") {
				t.Errorf("%s: the start-up check said %q", plat, got)
			}
		}
	})

	t.Run("the provenance names the Dockerfile's base images", func(t *testing.T) {
		s := sigstoretest.Start(t)
		byKey := []string{"--key", kp.PublicFile, "--insecure-ignore-tlog"}
		for plat, d := range svc.Platforms {
			for _, raw := range attestationStatements(t, s, byKey, repo+"@"+d, "slsaprovenance1") {
				var st struct {
					Predicate struct {
						BuildDefinition struct {
							ResolvedDependencies []struct{ Name, URI string } `json:"resolvedDependencies"`
						} `json:"buildDefinition"`
					} `json:"predicate"`
				}
				if err := json.Unmarshal(raw, &st); err != nil {
					t.Fatal(err)
				}
				var bases []string
				for _, dep := range st.Predicate.BuildDefinition.ResolvedDependencies {
					if dep.Name != "source" && dep.Name != "botcore" {
						bases = append(bases, dep.Name)
						if !digestShaped.MatchString(strings.TrimPrefix(dep.URI, "oci://")) {
							t.Errorf("%s: base %s resolved to %q", plat, dep.Name, dep.URI)
						}
					}
				}
				if !slices.Equal(bases, []string{"node:20-trixie", "node:20-trixie-slim", "golang:1.26-bookworm"}) {
					t.Errorf("%s: provenance bases %q, want the Dockerfile's FROM images and the Go image the prober was built in", plat, bases)
				}
			}
		}
	})

	t.Run("the build secret is nowhere", func(t *testing.T) {
		checkNoSecrets(t, []byte(stderr), out, reg, token)
	})
}

// probePath is where the pipeline puts its HTTP prober (services.ProbePath).
const probePath = "/usr/local/bin/botcore-probe"

// checkDeclaredHealthcheck checks the health check img declares in its
// label, and that the prober is in the image, built for its platform,
// exactly when that check uses it.
func checkDeclaredHealthcheck(t *testing.T, img v1.Image, plat string, want []string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := json.Unmarshal([]byte(cf.Config.Labels["com.bot-core.healthcheck"]), &got); err != nil || !slices.Equal(got, want) {
		t.Errorf("%s: label com.bot-core.healthcheck = %q, want %q", plat, cf.Config.Labels["com.bot-core.healthcheck"], want)
	}
	prober := imageFiles(t, img, probePath[1:])[probePath[1:]]
	if want[0] != probePath {
		if prober != "" {
			t.Errorf("%s: the image declares its own health command, yet carries the prober", plat)
		}
		return
	}
	// ELF e_machine, little-endian at offset 18: 62 x86-64, 183 AArch64.
	machine := map[string]int{"linux/amd64": 62, "linux/arm64": 183}[plat]
	if len(prober) < 20 || prober[:4] != "\x7fELF" || int(prober[18])|int(prober[19])<<8 != machine {
		t.Errorf("%s: %s is not an ELF executable for the platform (%d bytes)", plat, probePath, len(prober))
	}
}

// imageFiles reads the named files (paths without the leading slash) from
// the image's flattened filesystem.
func imageFiles(t *testing.T, img v1.Image, paths ...string) map[string]string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if p := strings.TrimPrefix(h.Name, "./"); slices.Contains(paths, p) {
				b, _ := io.ReadAll(tr)
				out[p] = string(b) // later layers win, as in the image
			}
		}
		rc.Close()
	}
	return out
}
