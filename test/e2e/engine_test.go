// Package e2e drives the real hermetic engine (hack/engine/up.sh) through the
// real dagger CLI and the Go SDK. Nothing here is faked: if the engine is not
// up the tests fail and say how to bring it up.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
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
	stdout, stderr, err := runDagger(t, repoRoot(t), append([]string{"call", "--progress=plain"}, args...)...)
	if err != nil {
		t.Fatalf("dagger call %s: %v\n--- stderr ---\n%s", strings.Join(args, " "), err, tail(stderr, 60))
	}
	return stdout
}

// runDagger runs the dagger CLI in dir. With BOTCORE_E2E_LOGS set to a
// directory, each call's arguments, duration and whole progress output are
// kept there (one file per call, named after the test): where a slow or
// failing run spent its time can then be read step by step afterwards.
func runDagger(t testing.TB, dir string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, daggerCLI(t), args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if logs := os.Getenv("BOTCORE_E2E_LOGS"); logs != "" {
		callSeq++
		name := fmt.Sprintf("%03d-%s.log", callSeq, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
		head := fmt.Sprintf("# dagger %s\n# in %s, %s, err=%v\n", strings.Join(args, " "), dir, time.Since(start).Round(time.Millisecond), err)
		if werr := os.WriteFile(filepath.Join(logs, name), append([]byte(head), stderr.Bytes()...), 0o644); werr != nil {
			t.Logf("keeping the dagger log: %v", werr)
		}
	}
	return stdout.String(), stderr.String(), err
}

// callSeq numbers the kept logs in call order (calls run one at a time).
var callSeq int

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
	ctx, client, log := connectSDK(t, 10*time.Minute)

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

// Containers reach the npm registry and the Go module proxy through this
// machine's TLS-inspecting proxy, so they must trust the machine's own CA
// certificates. The stand-in images carry them (hack/engine/trustlayer),
// and the engine itself has none left to install around each exec: given
// some, it runs update-ca-certificates in the container before and after
// every command, which under QEMU made each arm64 exec take two minutes.
func TestStandInImagesTrustTheMachineCAs(t *testing.T) {
	files, _ := filepath.Glob("/usr/local/share/ca-certificates/*.crt")
	if len(files) == 0 {
		t.Skip("this machine has no CA certificates of its own in /usr/local/share/ca-certificates")
	}
	pid, err := os.ReadFile("/var/cache/bot-core/run/engine.pid")
	if err != nil {
		t.Fatalf("engine pid: %v (run hack/engine/up.sh)", err)
	}
	// The engine's mount namespace is the one of the process up.sh started.
	out, err := exec.Command("nsenter", "-t", strings.TrimSpace(string(pid)), "-m", "--", "sh", "-c",
		"ls /usr/local/share/ca-certificates").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("the engine still sees custom CA certificates (%v): %q", err, out)
	}

	ctx, client, log := connectSDK(t, 10*time.Minute)
	for _, c := range []struct{ image, platform string }{
		{"node:20-trixie", "linux/amd64"}, {"python:3.13-slim-trixie", "linux/arm64"},
		{"gcr.io/distroless/cc-debian13:nonroot", "linux/arm64"}, {"golang:1.26-bookworm", "linux/amd64"},
	} {
		bundle, err := client.Container(dagger.ContainerOpts{Platform: dagger.Platform(c.platform)}).From(c.image).
			File("/etc/ssl/certs/ca-certificates.crt").Contents(ctx)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", c.image, c.platform, err, tail(log.String(), 40))
		}
		for _, f := range files {
			pem, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(bundle, strings.TrimSpace(string(pem))) {
				t.Errorf("%s %s: the CA bundle lacks %s", c.image, c.platform, f)
			}
		}
	}
}

// connectSDK connects the Go SDK through the dagger CLI on PATH; the client
// closes when the test ends, and the connection's log is kept for failures.
func connectSDK(t *testing.T, timeout time.Duration) (context.Context, *dagger.Client, *bytes.Buffer) {
	t.Helper()
	t.Setenv("_EXPERIMENTAL_DAGGER_CLI_BIN", daggerCLI(t))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	log := &bytes.Buffer{}
	client, err := dagger.Connect(ctx, dagger.WithLogOutput(log))
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, tail(log.String(), 40))
	}
	t.Cleanup(func() { client.Close() })
	return ctx, client, log
}
