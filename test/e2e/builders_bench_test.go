package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkBuilders times each builder on the projects of
// TestProjectsAsTheyAre (code this project did not write), one service and
// platform at a time through `dagger call build`, and prints a table:
//
//   - first: the first build of this run (cold on a fresh engine; on a used
//     one, whatever its caches still hold);
//   - unchanged: the same build again;
//   - one file: after a one-line change to one source file;
//   - size: the runtime image as an OCI tarball.
//
// Run: go test -run '^$' -bench Builders -benchtime 1x -timeout 90m ./test/e2e/
// (BOTCORE_BENCH_SERVICES=quotes,web times only those services).
func BenchmarkBuilders(b *testing.B) {
	services := []string{"web", "api", "digest", "quotes"}
	if only := os.Getenv("BOTCORE_BENCH_SERVICES"); only != "" {
		services = strings.Split(only, ",")
	}
	src := b.TempDir()
	for dir, fixture := range map[string]string{"web": "create-next-app", "workspace": "rust-workspace", "digest": "openssl-digest", "quotes": "fastapi-quotes"} {
		if out, err := exec.Command("cp", "-R", filepath.Join(repoRoot(b), "test", "e2e", "testdata", fixture), filepath.Join(src, dir)).CombinedOutput(); err != nil {
			b.Fatalf("copy %s: %v %s", fixture, err, out)
		}
	}
	manifest := "services:\n" +
		"  - {name: web, language: nextjs, path: web, port: 3000, health: /}\n" +
		"  - {name: api, language: rust, path: workspace, package: api-server, binary: api, port: 8080, health: /health}\n" +
		"  - {name: digest, language: rust, path: digest, system-packages: [libssl-dev], port: 8080, health: /health}\n" +
		"  - {name: quotes, language: python, path: quotes, command: uvicorn main:app --host 0.0.0.0 --port 8000, port: 8000, health: /health}\n"
	if err := os.WriteFile(filepath.Join(src, "services.yaml"), []byte(manifest), 0o644); err != nil {
		b.Fatal(err)
	}
	debian := newDebianArchive(b)
	vendorCrates(b, debian.crateSources(rustCrateRoots), filepath.Join(src, "workspace"), filepath.Join(src, "digest"))
	index := servePyIndex(b, debian.pythonWheels(pythonIndexPackages...), "botcore", pipPassword)
	b.Setenv("PIP_CREDENTIALS", "botcore:"+pipPassword)

	// The file each service's one-line change goes to.
	edits := map[string]string{"web": "web/app/page.tsx", "api": "workspace/server/src/main.rs", "digest": "digest/src/main.rs", "quotes": "quotes/main.py"}
	comment := map[string]string{"web": "// bench %d\n", "api": "// bench %d\n", "digest": "// bench %d\n", "quotes": "# bench %d\n"}
	var table strings.Builder
	fmt.Fprintf(&table, "%-7s %-12s %9s %10s %9s %9s\n", "service", "platform", "first", "unchanged", "one file", "size")
	for _, svc := range services {
		if _, ok := edits[svc]; !ok {
			b.Fatalf("BOTCORE_BENCH_SERVICES: no service %q (web, api, digest, quotes)", svc)
		}
		for _, p := range []string{"linux/amd64", "linux/arm64"} {
			tarball := filepath.Join(b.TempDir(), "image.tar")
			build := func() time.Duration {
				b.Helper()
				start := time.Now()
				logs, err := daggerCallErr(b, repoRoot(b), "--source", src, "build", "--service", svc, "--platform", p,
					"--pip-index-url", index.URL, "--pip-credentials", "env://PIP_CREDENTIALS", "export", "--path", tarball)
				if err != nil {
					b.Fatalf("build %s %s: %v\n%s", svc, p, err, tail(logs, 30))
				}
				return time.Since(start)
			}
			first := build()
			unchanged := build()
			f, err := os.OpenFile(filepath.Join(src, edits[svc]), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(f, comment[svc], time.Now().UnixNano())
			f.Close()
			oneFile := build()
			fi, err := os.Stat(tarball)
			if err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(&table, "%-7s %-12s %8.1fs %9.1fs %8.1fs %7.1fMB\n", svc, p, first.Seconds(), unchanged.Seconds(), oneFile.Seconds(), float64(fi.Size())/1e6)
		}
	}
	// Printed, not logged: the testing package keeps only a benchmark's first log lines.
	fmt.Printf("dagger call build, one service and platform at a time (the one-file change is a comment appended to %v):\n%s", edits, table.String())
}
