package e2e

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// createdLabel builds python-ai-service for amd64 with args before the
// function (source, git) and after it, and returns its created label.
func createdLabel(t *testing.T, before []string, after ...string) time.Time {
	t.Helper()
	args := append(append(before, "build", "--service", "python-ai-service", "--platform", "linux/amd64"), after...)
	out := daggerCall(t, append(args, "label", "--name", "org.opencontainers.image.created")...)
	when, err := time.Parse(time.RFC3339, strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("created label %q: %v", out, err)
	}
	return when
}

// headCommitTime is the repository's HEAD commit time, what build-all
// stamps images with when no --source-date-epoch is given.
func headCommitTime(t *testing.T) int64 {
	t.Helper()
	out, err := exec.Command("git", "-C", repoRoot(t), "log", "-1", "--format=%ct").Output()
	if err != nil {
		t.Skipf("the repository is not a git checkout here: %v", err)
	}
	secs, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return secs
}

// Without --source-date-epoch an image is dated by its source, never 1970.
func TestSourceDateDefaultsToTheSource(t *testing.T) {
	t.Run("a git checkout: the commit time of HEAD", func(t *testing.T) {
		want := time.Unix(headCommitTime(t), 0)
		if got := createdLabel(t, nil); !got.Equal(want) {
			t.Errorf("created %s, want HEAD's commit time %s", got, want)
		}
	})

	t.Run("no git: the newest file time in the source", func(t *testing.T) {
		src := t.TempDir()
		svc := "examples/bot-core/python-ai-service"
		if err := os.CopyFS(filepath.Join(src, svc), os.DirFS(filepath.Join(repoRoot(t), svc))); err != nil {
			t.Fatal(err)
		}
		manifest := "services:\n  - name: python-ai-service\n    language: python\n    path: " + svc + "\n    port: 8000\n    health: /health\n"
		if err := os.WriteFile(filepath.Join(src, "services.yaml"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Date(2021, 5, 5, 0, 0, 0, 0, time.UTC)
		newest := time.Date(2024, 2, 29, 12, 30, 0, 0, time.UTC)
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			return os.Chtimes(p, old, old)
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(src, "services.yaml"), newest, newest); err != nil {
			t.Fatal(err)
		}
		if got := createdLabel(t, []string{"--source", src, "--git", src}); !got.Equal(newest) {
			t.Errorf("created %s, want the newest file's time %s", got, newest)
		}
	})

	t.Run("0 is asked for, and given", func(t *testing.T) {
		if got := createdLabel(t, nil, "--source-date-epoch", "0"); got.Unix() != 0 {
			t.Errorf("created %s with --source-date-epoch 0", got)
		}
	})
}
