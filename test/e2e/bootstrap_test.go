package e2e

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// upScript runs hack/engine/up.sh with its cache pointed at a fresh directory,
// so the warm fast path of the real engine cannot answer for it, and returns
// the exit code and stderr.
func upScript(t *testing.T, wrap []string, env ...string) (int, string, string) {
	t.Helper()
	cache := t.TempDir()
	args := append(wrap, filepath.Join(repoRoot(t), "hack", "engine", "up.sh"))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), append([]string{"BOTCORE_CACHE=" + cache}, env...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stderr.String(), cache
}

// A missing prerequisite stops the bootstrap before it builds or starts
// anything, with exactly one "error:" line saying what to do.
func TestBootstrapPreflightErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("these tests need root, as hack/engine/up.sh does")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	cases := []struct {
		name string
		wrap []string
		env  []string
		want string
	}{
		{"not root", []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}, nil, "must run as root"},
		{"port taken", nil, []string{"BOTCORE_REGISTRY_ADDR=" + taken.Addr().String()}, "is taken"},
		// A tmpfs over /proc/sys/fs in a private mount namespace hides binfmt_misc,
		// as on a kernel built without it.
		{"no binfmt", []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", `mount -t tmpfs none /proc/sys/fs && exec "$0"`}, nil, "no binfmt_misc support"},
		{"room not a number", []string{"sh", "-c", `exec "$0" --room lots`}, nil, "usage: hack/engine/up.sh [--room GIB]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stderr, cache := upScript(t, c.wrap, c.env...)
			if code == 0 {
				t.Fatalf("up.sh succeeded; stderr:\n%s", stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "error: ") || !strings.Contains(lines[0], c.want) {
				t.Fatalf("want one line 'error: ...%s...', got:\n%s", c.want, stderr)
			}
			for _, heavy := range []string{"engine-bin", "images", "go-sdk", "registry"} {
				if _, err := os.Stat(filepath.Join(cache, heavy)); err == nil {
					t.Errorf("%s was created although the bootstrap stopped at preflight", heavy)
				}
			}
		})
	}

	t.Run("disk full", func(t *testing.T) {
		// A 64 MiB tmpfs stands for a nearly full disk.
		dir := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "botcore-test", dir).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		defer exec.Command("umount", dir).Run()
		// The disk is checked after the port: point the registry at a free
		// one, so the real engine's registry does not answer first.
		free, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := free.Addr().String()
		free.Close()
		cmd := exec.Command(filepath.Join(repoRoot(t), "hack", "engine", "up.sh"))
		cmd.Env = append(os.Environ(), "BOTCORE_CACHE="+dir, "BOTCORE_REGISTRY_ADDR="+addr)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("up.sh succeeded on a 64 MiB disk:\n%s", out)
		}
		if s := strings.TrimSpace(string(out)); strings.Count(s, "\n") != 0 || !strings.Contains(s, "GiB free") {
			t.Fatalf("want one line about free space, got:\n%s", out)
		}
	})
}

// up.sh --room collects the engine's cache before a run, while no session
// runs, and leaves the engine running with its own thresholds: a collection
// during a session can remove a running function's scratch directory
// (Dagger v0.19.10), so the engine must not need one mid-run.
func TestUpMakesRoomBeforeARun(t *testing.T) {
	const run = "/var/cache/bot-core/run"
	before, err := os.ReadFile(run + "/engine.pid")
	if err != nil {
		t.Fatalf("engine pid: %v (run hack/engine/up.sh)", err)
	}
	start := time.Now().Add(-time.Second)
	cmd := exec.Command(filepath.Join(repoRoot(t), "hack", "engine", "up.sh"), "--room", "1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("up.sh --room 1: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{
		"making room for 1 GiB", "collecting the engine's cache to at most 49 GiB, leaving 11 GiB free",
		"restarting the engine to collect its cache", "restarting the engine with its own collection thresholds",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("up.sh --room 1 did not say %q:\n%s", want, stderr.String())
		}
	}
	prune, err := os.ReadFile(run + "/logs/prune.log")
	if st, serr := os.Stat(run + "/logs/prune.log"); err != nil || serr != nil || st.ModTime().Before(start) ||
		!strings.Contains(string(prune), "useDefaultPolicy") {
		t.Errorf("no prune with the engine's policy in a fresh prune.log (%v):\n%s", err, prune)
	}

	after, err := os.ReadFile(run + "/engine.pid")
	if err != nil {
		t.Fatal(err)
	}
	if string(after) == string(before) {
		t.Errorf("the engine was not restarted (pid %s)", before)
	}
	// The engine now running has its own thresholds back, not the lowered ones.
	conf, err := exec.Command("nsenter", "-t", strings.TrimSpace(string(after)), "-m", "--",
		"cat", "/etc/dagger/engine.json").CombinedOutput()
	if err != nil {
		t.Fatalf("read the engine's config: %v\n%s", err, conf)
	}
	var engine struct{ GC map[string]string }
	if err := json.Unmarshal(conf, &engine); err != nil {
		t.Fatalf("engine.json: %v\n%s", err, conf)
	}
	want := map[string]string{"reservedSpace": "15GB", "maxUsedSpace": "50GB", "minFreeSpace": "10GB", "sweepSize": "20GB"}
	for k, v := range want {
		if engine.GC[k] != v {
			t.Errorf("engine gc %s = %q, want %q (engine.json: %s)", k, engine.GC[k], v, conf)
		}
	}
	if out, err := exec.Command(daggerCLI(t), "core", "version").CombinedOutput(); err != nil || !strings.Contains(string(out), "v0.19.10") {
		t.Errorf("the restarted engine does not answer: %v\n%s", err, out)
	}
}
