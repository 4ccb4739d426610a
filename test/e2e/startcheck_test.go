package e2e

import (
	"context"
	"os"
	"path/filepath"
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
			"before its health check /usr/local/bin/botcore-probe http://127.0.0.1:8000/health passed", "No module named 'settings_nobody_wrote'"} {
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
		daggerCall(t, append(call, "--platforms", "linux/amd64", "--record-failure", "export", "--path", out)...)
		rel := readRelease(t, out)
		if rel.State != release.StateBuilt || rel.StartCheck == nil || len(rel.StartCheck.Failed) != 1 || rel.StartCheck.TimeoutSeconds != 60 {
			t.Fatalf("release.json state %q, startCheck %+v: want built, the image failed", rel.State, rel.StartCheck)
		}
		if err := rel.Check(); err == nil {
			t.Error("the record of a release stopped by the start-up check passes check-release")
		}
	})

	t.Run("--skip-start-check lets it through and says so", func(t *testing.T) {
		out := t.TempDir()
		daggerCall(t, append(call, "--platforms", "linux/amd64", "--skip-start-check", "--build-only", "export", "--path", out)...)
		rel := readRelease(t, out)
		if rel.StartCheck == nil || !rel.StartCheck.Skipped || len(rel.StartCheck.Results) != 0 {
			t.Fatalf("release.json startCheck %+v, want skipped", rel.StartCheck)
		}
		if b, _ := os.ReadFile(filepath.Join(out, "summary.md")); !strings.Contains(string(b), "Start-up check: skipped") {
			t.Errorf("summary.md does not say the start-up check was skipped:\n%s", b)
		}
	})
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
