package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// builtTool is a botcore binary built on the host, as the workflow builds
// it on the runner before handing it to build-all --tool.
type builtTool struct {
	path, sha256 string
}

var (
	toolOnce sync.Once
	tool     builtTool
	toolErr  error
	toolDir  string
)

// hostTool builds cmd/botcore once per test binary. hack/test.sh sets
// CGO_ENABLED=0 for every build, so this mostly links what the unit tests
// already compiled.
func hostTool(t *testing.T) builtTool {
	t.Helper()
	toolOnce.Do(func() {
		if toolDir, toolErr = os.MkdirTemp("", "botcore-tool-"); toolErr != nil {
			return
		}
		path := filepath.Join(toolDir, "botcore")
		cmd := exec.Command("go", "build", "-ldflags", "-s -w", "-o", path, "./cmd/botcore")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOEXPERIMENT=jsonv2", "GOFLAGS=-mod=readonly")
		if out, err := cmd.CombinedOutput(); err != nil {
			toolErr = fmt.Errorf("%v\n%s", err, out)
			return
		}
		bin, err := os.ReadFile(path)
		if err != nil {
			toolErr = err
			return
		}
		sum := sha256.Sum256(bin)
		tool = builtTool{path: path, sha256: hex.EncodeToString(sum[:])}
	})
	if toolErr != nil {
		t.Fatalf("go build ./cmd/botcore: %v", toolErr)
	}
	return tool
}

// build-all scans with the botcore binary it is given, compiling nothing,
// and records it; a binary that cannot run in the engine ends the release
// before any build.
func TestGivenTool(t *testing.T) {
	one := []string{"build-all", "--trivy-db", offlineDB(t), "--services", "python-ai-service", "--platforms", "linux/amd64", "--version", "v4.0.0", "--build-only"}

	t.Run("a binary that cannot run fails before any build", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "botcore")
		if err := os.WriteFile(bad, []byte("this is no program\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		stderr, err := daggerCallErr(t, repoRoot(t), append([]string{"--tool", bad}, one...)...)
		if err == nil {
			t.Fatalf("build-all accepted a tool that cannot run:\n%s", tail(stderr, 30))
		}
		if !strings.Contains(stderr, "the botcore binary given as --tool does not run in the engine's containers") {
			t.Errorf("the error does not say the tool cannot run:\n%s", tail(stderr, 30))
		}
		if strings.Contains(stderr, "stage build") {
			t.Errorf("a build stage started before the tool was checked:\n%s", tail(stderr, 30))
		}
	})

	t.Run("the given binary scans and is recorded", func(t *testing.T) {
		given := hostTool(t)
		out := t.TempDir()
		stderr, err := daggerCallErr(t, repoRoot(t), append(append([]string{"--tool", given.path}, one...), "export", "--path", out)...)
		if err != nil {
			t.Fatalf("build-all --tool: %v\n%s", err, tail(stderr, 60))
		}
		if !strings.Contains(stderr, "botcore tool (given):") {
			t.Errorf("the log does not name the tool:\n%s", tail(stderr, 60))
		}
		m := readRelease(t, out)
		trivy, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/aquasecurity/trivy").Output()
		if err != nil {
			t.Fatal(err)
		}
		if m.Tool == nil || m.Tool.Source != "given" || m.Tool.SHA256 != given.sha256 || m.Tool.Libraries["trivy"] != strings.TrimSpace(string(trivy)) {
			t.Fatalf("release.json tool %+v, want the given binary (sha256 %s, trivy %s)", m.Tool, given.sha256, trivy)
		}
		if m.Scan == nil || len(m.Services) != 1 || len(m.Services[0].Reports) != 1 {
			t.Errorf("release.json scan %+v services %+v: want one scanned image", m.Scan, m.Services)
		}
		summary, err := os.ReadFile(filepath.Join(out, "summary.md"))
		if err != nil || !strings.Contains(string(summary), "given with --tool; sha256 `"+given.sha256+"`") {
			t.Errorf("summary.md does not name the tool (%v):\n%s", err, summary)
		}
	})
}
