package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bot-core/delivery/pipelines/release"
	"github.com/bot-core/delivery/pipelines/reproducible"
)

// engineUp runs hack/engine/up.sh ARGS with extra environment (none: the
// usual engine and its state) and returns what it printed.
func engineUp(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot(t), "hack/engine/up.sh")}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BOTCORE_ENGINE_STATE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hack/engine/up.sh %v %v: %v\n%s", env, args, err, tail(string(out), 30))
	}
	return string(out)
}

// platformImage is one platform's manifest and config of a service's
// exported layout (layoutImage finds the image).
func platformImage(t *testing.T, dir string, platform string) reproducible.Image {
	t.Helper()
	img := layoutImage(t, dir, platform)
	mf, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return reproducible.Image{Manifest: *mf, Config: *cf, RawConfig: raw}
}

// An engine that shares no cache with the one that built a release builds
// it again with the same index digests: nothing in the images depends on
// the engine, its cache or the time of the build. The second engine has a
// state directory of its own (hack/engine/up.sh's BOTCORE_ENGINE_STATE), so
// it pulls every base image and runs every build step anew.
func TestAnEngineWithoutCacheBuildsTheSameRelease(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("switching the hermetic engine's state directory needs root, as hack/engine/up.sh does")
	}
	tool := hostTool(t)
	db := offlineDB(t)
	// Next.js's per-build keys come from it; without one they are random.
	t.Setenv("BOTCORE_E2E_BUILD_KEY", "cold-rebuild-test-key")
	lockDir := t.TempDir()
	lock := filepath.Join(lockDir, "images.lock")
	daggerCall(t, "lock-images", "export", "--path", lock)
	build := func(out string) exported {
		daggerCall(t, "--images-lock", lock, "--tool", tool.path, "--build-key", "env:BOTCORE_E2E_BUILD_KEY", "build-all", "--trivy-db", db, "--build-only",
			"--version", "v1.0.0", "--git-sha", testSHA, "--source-date-epoch", "1700000000", "export", "--path", out)
		return exported{dir: out, m: readRelease(t, out)}
	}
	warm := build(t.TempDir())

	cache := os.Getenv("BOTCORE_CACHE")
	if cache == "" {
		cache = "/var/cache/bot-core"
	}
	// The engine without cache writes about 8.5 GiB (every base image, every
	// build step) beside the usual one's state: the usual engine collects its
	// cache first if the disk is short of that.
	engineUp(t, nil, "--room", "12")
	state, err := os.MkdirTemp(cache, "engine-state-cold-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		engineUp(t, nil) // back to the usual engine, which stops this one
		if err := os.RemoveAll(state); err != nil {
			t.Errorf("remove the cold engine's state: %v", err)
		}
	})
	// A new state directory takes up.sh's slow path, which ends with where
	// its time went, step by step.
	up := engineUp(t, []string{"BOTCORE_ENGINE_STATE=" + state})
	if !regexp.MustCompile(`where the time went: packages \d+ s, image tools \d+ s, binaries \d+ s, Go SDK image \d+ s, base images \d+ s .*, registry \d+ s, engine \d+ s`).MatchString(up) {
		t.Errorf("up.sh's slow path did not end with its figures:\n%s", tail(up, 10))
	}
	start := time.Now()
	cold := build(t.TempDir())
	t.Logf("the release on an engine without cache: %s", time.Since(start).Round(time.Second))

	if len(cold.m.Services) != len(warm.m.Services) {
		t.Fatalf("%d services, then %d", len(warm.m.Services), len(cold.m.Services))
	}
	for i, w := range warm.m.Services {
		c := cold.m.Services[i]
		if w.IndexDigest == c.IndexDigest {
			t.Logf("%s: %s on both engines", w.Name, w.IndexDigest)
			continue
		}
		t.Errorf("%s: %s on the warm engine, %s on the one without cache", w.Name, w.IndexDigest, c.IndexDigest)
		if logs := os.Getenv("BOTCORE_E2E_LOGS"); logs != "" {
			// Both layouts, to diff the layers afterwards.
			for side, dir := range map[string]string{"warm": filepath.Join(warm.dir, w.Layout), "cold": filepath.Join(cold.dir, c.Layout)} {
				if err := os.CopyFS(filepath.Join(logs, "cold-rebuild", w.Name, side), os.DirFS(dir)); err != nil {
					t.Log(err)
				}
			}
		}
		for _, p := range warm.m.Platforms {
			for _, line := range reproducible.Diff(platformImage(t, filepath.Join(warm.dir, w.Layout), p), platformImage(t, filepath.Join(cold.dir, c.Layout), p)) {
				t.Errorf("  %s %s: %s", w.Name, p, line)
			}
		}
	}
}

// exported is a build-all export: its directory and release.json.
type exported struct {
	dir string
	m   release.Manifest
}
