package sigstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// FulcioVersion is the Fulcio release the harness runs.
const FulcioVersion = "v1.8.8"

// FulcioModule is built with `go install FulcioModule@FulcioVersion`.
const FulcioModule = "github.com/sigstore/fulcio"

// CosignPackage is the cosign CLI, built from this repository's module so
// it is the cosign version go.mod pins (the one botcore links).
const CosignPackage = "github.com/sigstore/cosign/v2/cmd/cosign"

// EnvToolsDir overrides where built tools are cached.
const EnvToolsDir = "BOTCORE_TOOLS_DIR"

// DefaultToolsDir is the tools cache when EnvToolsDir is unset.
const DefaultToolsDir = "/var/cache/bot-core/tools"

// ToolsDir is the root of the tools cache; each tool lives in
// <root>/<name>/<version>/<name>.
func ToolsDir() string {
	if d := os.Getenv(EnvToolsDir); d != "" {
		return d
	}
	return DefaultToolsDir
}

// FulcioBinary returns the path of the Fulcio server binary, building it
// first when the cache lacks it (minutes on a cold Go build cache).
func FulcioBinary(ctx context.Context) (string, error) {
	return ensureTool(ctx, "fulcio", FulcioVersion, func(ctx context.Context, out string) error {
		gobin := filepath.Dir(out)
		// `go install mod@version` builds outside any module, with the
		// versions Fulcio's own go.mod pins.
		return goCmd(ctx, os.TempDir(), []string{"GOBIN=" + gobin}, "install", FulcioModule+"@"+FulcioVersion)
	})
}

// CosignBinary returns the path of the cosign CLI binary of the cosign
// version in this module's go.mod, building it first when needed.
func CosignBinary(ctx context.Context) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	version, err := goOutput(ctx, root, "list", "-m", "-f", "{{.Version}}", "github.com/sigstore/cosign/v2")
	if err != nil {
		return "", fmt.Errorf("finding the cosign version in %s/go.mod: %w", root, err)
	}
	return ensureTool(ctx, "cosign", version, func(ctx context.Context, out string) error {
		// No -trimpath: it would share nothing with the build cache botcore's
		// own builds fill, and cosign's dependencies are most of botcore's.
		return goCmd(ctx, root, nil, "build", "-o", out, CosignPackage)
	})
}

// ensureTool returns <ToolsDir>/<name>/<version>/<name>, running build
// under a file lock when it is missing. build writes the binary to the path
// it is given (in a temporary directory, renamed into place when complete,
// so a killed build never leaves a broken binary behind).
func ensureTool(ctx context.Context, name, version string, build func(ctx context.Context, out string) error) (string, error) {
	dir := filepath.Join(ToolsDir(), name, version)
	bin := filepath.Join(dir, name)
	if isExecutable(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating the tools cache %s (set %s to another directory): %w", dir, EnvToolsDir, err)
	}
	unlock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) { // built by another process while we waited
		return bin, nil
	}
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, name)
	start := time.Now()
	if err := build(ctx, out); err != nil {
		return "", fmt.Errorf("building %s %s: %w", name, version, err)
	}
	if !isExecutable(out) {
		return "", fmt.Errorf("building %s %s produced no binary at %s", name, version, out)
	}
	if err := os.Rename(out, bin); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "sigstoretest: built %s %s into %s in %s\n", name, version, bin, time.Since(start).Round(time.Second))
	return bin, nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// lockFile takes an exclusive flock, so concurrent test binaries (this
// package's and test/e2e's) build each tool once.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func goCmd(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, goBinary(), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 4000))
	}
	return nil
}

func goOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, goBinary(), args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// moduleRoot is the directory of the go.mod that builds the cosign CLI:
// the module of the test's working directory, else of this source file.
func moduleRoot(ctx context.Context) (string, error) {
	if gomod, err := goOutput(ctx, ".", "env", "GOMOD"); err == nil && gomod != "" && gomod != os.DevNull {
		return filepath.Dir(gomod), nil
	}
	_, file, _, ok := runtime.Caller(0)
	if ok {
		for dir := filepath.Dir(file); dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return dir, nil
			}
		}
	}
	return "", errors.New("cannot find the bot-core go.mod to build cosign from: run from inside the repository")
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
