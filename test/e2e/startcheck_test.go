package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bot-core/delivery/pipelines/release"
)

// An image that cannot start stops the release before anything is scanned
// or pushed. The Python example's entry module here imports a module that
// does not exist, as an image whose command does not fit its code would:
// it builds, and would pass a scan.
func TestStartCheckStopsABrokenImage(t *testing.T) {
	src := sourceCopy(t)
	main := filepath.Join(src, "examples", "bot-core", "python-ai-service", "app", "main.py")
	if err := os.WriteFile(main, []byte("import settings_nobody_wrote\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t)
	call := []string{"--source", src, "--tool", hostTool(t).path, "build-all", "--trivy-db", offlineDB(t), "--services", "python-ai-service",
		"--version", "v1.0.0", "--registry", reg + "/bc", "--registry-service", "tcp://" + reg, "--allow-unsigned", "--start-timeout", "60"}

	t.Run("fails before the scan and the push, naming each image and its output", func(t *testing.T) {
		stderr, err := daggerCallErr(t, repoRoot(t), append(call, "export", "--path", t.TempDir())...)
		if err == nil {
			t.Fatal("build-all published an image that cannot start")
		}
		for _, want := range []string{"start-up check failed, nothing was pushed",
			"python-ai-service linux/amd64: it exited (status 1)", "python-ai-service linux/arm64: it exited (status 1)",
			"before answering GET /health", "No module named 'settings_nobody_wrote'"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("the failure does not say %q:\n%s", want, tail(stderr, 40))
			}
		}
		if strings.Contains(stderr, "stage scan+sbom:") {
			t.Error("the scan ran after the start-up check failed")
		}
		r, _ := name.NewRegistry(reg)
		if repos, err := remote.Catalog(context.Background(), r); err != nil || len(repos) != 0 {
			t.Errorf("the registry holds %v (%v) after a failed start-up check, want nothing", repos, err)
		}
	})

	t.Run("the release record says which images did not start", func(t *testing.T) {
		out := t.TempDir()
		daggerCall(t, append(call, "--record-failure", "export", "--path", out)...)
		rel := readRelease(t, out)
		if rel.State != release.StateBuilt || rel.StartCheck == nil || len(rel.StartCheck.Failed) != 2 || rel.StartCheck.TimeoutSeconds != 60 {
			t.Fatalf("release.json state %q, startCheck %+v: want built, both platforms failed", rel.State, rel.StartCheck)
		}
		if err := rel.Check(); err == nil {
			t.Error("the record of a release stopped by the start-up check passes check-release")
		}
	})

	t.Run("--skip-start-check lets it through and says so", func(t *testing.T) {
		out := t.TempDir()
		daggerCall(t, append(call, "--skip-start-check", "--build-only", "export", "--path", out)...)
		rel := readRelease(t, out)
		if rel.StartCheck == nil || !rel.StartCheck.Skipped || len(rel.StartCheck.Results) != 0 {
			t.Fatalf("release.json startCheck %+v, want skipped", rel.StartCheck)
		}
		if b, _ := os.ReadFile(filepath.Join(out, "summary.md")); !strings.Contains(string(b), "Start-up check: skipped") {
			t.Errorf("summary.md does not say the start-up check was skipped:\n%s", b)
		}
	})
}

// A Python service shaped unlike the example (no app package: the files to
// serve and a command) starts as services.yaml says. The server is CPython's
// own http.server; without the command the image cannot start, as in the
// issue this answers, and the gate says so.
func TestPythonCommand(t *testing.T) {
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "site"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "site", "index.html"), []byte("<p>served by python</p>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := func(command string) {
		yaml := "services:\n  - name: site\n    language: python\n    path: site\n    port: 8000\n    health: /index.html\n" + command
		if err := os.WriteFile(filepath.Join(src, "services.yaml"), []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	call := []string{"--source", src, "--tool", hostTool(t).path, "build-all", "--trivy-db", offlineDB(t), "--version", "v0.1.0", "--build-only"}

	manifest("    command: python3 -m http.server 8000 --bind 0.0.0.0\n")
	out := t.TempDir()
	daggerCall(t, append(call, "export", "--path", out)...)
	rel := readRelease(t, out)
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		if got := rel.StartCheck.Results["site "+p]; !strings.Contains(got, "GET /index.html on port 8000 answered 200") {
			t.Errorf("%s: start-up check said %q", p, got)
		}
	}
	img := layoutImage(t, filepath.Join(out, rel.Services[0].Layout), "linux/arm64")
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "python3 -m http.server 8000 --bind 0.0.0.0" {
		t.Errorf("entrypoint %q, want the declared command", got)
	}
	if !slices.ContainsFunc(cf.Config.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=/opt/venv/bin:") }) {
		t.Errorf("environment %q: the virtual environment is not first on PATH", cf.Config.Env)
	}

	manifest("")
	stderr, err := daggerCallErr(t, repoRoot(t), append(call, "export", "--path", t.TempDir())...)
	if err == nil || !strings.Contains(stderr, "site linux/amd64: it exited (status 1)") || !strings.Contains(stderr, "No module named 'app'") || !strings.Contains(stderr, "has no command: in services.yaml") {
		t.Errorf("without its command the service was not stopped by the start-up check (%v):\n%s", err, tail(stderr, 30))
	}
}

// layoutImage is one platform's image of an exported OCI image layout.
func layoutImage(t *testing.T, dir, platform string) v1.Image {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	// build-all's layout holds the service's index; its manifests are the platforms.
	for _, d := range im.Manifests {
		if d.MediaType.IsIndex() {
			inner, err := idx.ImageIndex(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if imm, err := inner.IndexManifest(); err == nil {
				for _, m := range imm.Manifests {
					if m.Platform != nil && m.Platform.OS+"/"+m.Platform.Architecture == platform {
						img, err := inner.Image(m.Digest)
						if err != nil {
							t.Fatal(err)
						}
						return img
					}
				}
			}
		}
		if d.Platform != nil && d.Platform.OS+"/"+d.Platform.Architecture == platform {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("%s has no %s image", dir, platform)
	return nil
}
