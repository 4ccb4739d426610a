// Package e2e drives the real hermetic engine (hack/engine/up.sh) through the
// real dagger CLI and the Go SDK. Nothing here is faked: if the engine is not
// up the tests fail and say how to bring it up.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"dagger.io/dagger"
)

// repoRoot is the directory holding dagger.json.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func daggerCLI(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("dagger")
	if err != nil {
		t.Fatalf("no dagger on PATH: run hack/engine/up.sh first (%v)", err)
	}
	return p
}

// callTimeout bounds one `dagger call`. The first build-all on a fresh machine
// also compiles the botcore tool (Trivy, Syft, cosign) inside the engine:
// 9 min alone on 2 cores, longer beside other cold builds.
const callTimeout = 45 * time.Minute

// daggerCall runs `dagger call ARGS...` on the project's module and returns
// its stdout; the CLI's progress output goes to the test log on failure.
func daggerCall(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, daggerCLI(t), append([]string{"call", "--progress=plain"}, args...)...)
	cmd.Dir = repoRoot(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dagger call %s: %v\n--- stderr ---\n%s", strings.Join(args, " "), err, tail(stderr.String(), 60))
	}
	return stdout.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// The module's smoke function runs `uname -m` in the mirrored Debian base:
// arm64 must really execute arm64 code (through binfmt/QEMU), not fall back
// to the host's architecture.
func TestDaggerCallSmokePerPlatform(t *testing.T) {
	for platform, want := range map[string]string{
		"linux/amd64": "x86_64",
		"linux/arm64": "aarch64",
	} {
		t.Run(platform, func(t *testing.T) {
			got := strings.TrimSpace(daggerCall(t, "smoke", "--platform", platform))
			if got != want {
				t.Fatalf("dagger call smoke --platform %s printed %q, want %q", platform, got, want)
			}
		})
	}
}

// The Go SDK at the engine's version connects through the same CLI and runs
// a container exec; the output proves the command ran in a fresh container
// from the local mirror's Debian image and not on the host, which has the Go
// toolchain and this checkout.
func TestGoSDKContainerExec(t *testing.T) {
	t.Setenv("_EXPERIMENTAL_DAGGER_CLI_BIN", daggerCLI(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var log bytes.Buffer
	client, err := dagger.Connect(ctx, dagger.WithLogOutput(&log))
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, tail(log.String(), 40))
	}
	defer client.Close()

	nonce := fmt.Sprint(time.Now().UnixNano()) // defeats the engine's cache, so the exec really runs
	out, err := client.Container().
		From("debian:bookworm-slim").
		WithEnvVariable("NONCE", nonce).
		WithExec([]string{"sh", "-c", `. /etc/os-release; where=host; [ -e /usr/local/go ] || [ -e /work ] || where=container; echo "$VERSION_CODENAME $where $NONCE"`}).
		Stdout(ctx)
	if err != nil {
		t.Fatalf("container exec: %v\n%s", err, tail(log.String(), 40))
	}
	if got, want := strings.TrimSpace(out), "bookworm container "+nonce; got != want {
		t.Fatalf("exec printed %q, want %q", got, want)
	}
}
