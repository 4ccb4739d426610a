package e2e

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copySources copies services.yaml and examples/ into dst without build
// outputs, as a checkout of the repository would have them.
func copySources(t *testing.T, dst string) {
	t.Helper()
	root := repoRoot(t)
	err := filepath.WalkDir(filepath.Join(root, "examples"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".next" || d.Name() == "target" || d.Name() == "__pycache__"):
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "services.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "services.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rebuild-check rebuilds a release from its source and says, image by
// image, identical or where it differs.
func TestRebuildCheck(t *testing.T) {
	src := t.TempDir()
	copySources(t, src)
	out := t.TempDir()
	t.Setenv("BOTCORE_E2E_BUILD_KEY", "rebuild-check-test-key")
	on := []string{"--source", src, "--git", src, "--build-key", "env:BOTCORE_E2E_BUILD_KEY"}
	daggerCall(t, append(on, "--tool", hostTool(t).path, "build-all", "--trivy-db", offlineDB(t), "--build-only",
		"--version", "v1.0.0", "--git-sha", testSHA, "--source-date-epoch", "1700000000", "export", "--path", out)...)
	rel := readRelease(t, out)

	t.Run("the same source rebuilds every image identically", func(t *testing.T) {
		report := daggerCall(t, append(on, "rebuild-check", "--release", out)...)
		for _, s := range rel.Services {
			for _, p := range rel.Platforms {
				if !strings.Contains(report, s.Name+" "+p+": identical") {
					t.Errorf("no identical for %s %s in:\n%s", s.Name, p, report)
				}
			}
		}
		if !strings.Contains(report, "identical: all 6 images") {
			t.Errorf("report:\n%s", report)
		}
	})

	t.Run("one byte changed in one service names its layer", func(t *testing.T) {
		changed := t.TempDir()
		copySources(t, changed)
		main := filepath.Join(changed, "examples/bot-core/python-ai-service/app/main.py")
		data, err := os.ReadFile(main)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(main, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		stderr, err := daggerCallErr(t, repoRoot(t), "--source", changed, "--git", changed, "--build-key", "env:BOTCORE_E2E_BUILD_KEY", "rebuild-check", "--release", out)
		if err == nil {
			t.Fatal("a changed source rebuilt identically")
		}
		for _, want := range []string{"the rebuild differs for 2 of 6 images", "python-ai-service linux/amd64: differs", "python-ai-service linux/arm64: differs",
			"rust-core-engine linux/arm64: identical", "nextjs-ui-dashboard linux/amd64: identical", "differs: sha256:"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("missing %q in:\n%s", want, tail(stderr, 40))
			}
		}
		if !strings.Contains(stderr, "layer ") || !strings.Contains(stderr, "other content") {
			t.Errorf("the differing layer is not named:\n%s", tail(stderr, 40))
		}
	})

	t.Run("a release of other pinned images is refused", func(t *testing.T) {
		other := t.TempDir()
		if err := os.CopyFS(other, os.DirFS(out)); err != nil {
			t.Fatal(err)
		}
		m := rel
		m.ImagesLock = strings.Repeat("ab", 32)
		data, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(other, "release.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		stderr, err := daggerCallErr(t, repoRoot(t), append(on, "rebuild-check", "--release", other)...)
		if err == nil || !strings.Contains(stderr, "the release was built with an images.lock (sha256:abab") {
			t.Errorf("want the lockfile named, got %v:\n%s", err, tail(stderr, 20))
		}
	})

	t.Run("a directory without release.json is refused", func(t *testing.T) {
		stderr, err := daggerCallErr(t, repoRoot(t), append(on, "rebuild-check", "--release", t.TempDir())...)
		if err == nil || !strings.Contains(stderr, "--release has no release.json") {
			t.Errorf("got %v:\n%s", err, tail(stderr, 20))
		}
	})
}
