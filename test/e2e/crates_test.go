package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// vendorCrates fills each project's vendor/ (its .cargo/config.toml points
// crates.io there) with the crates its Cargo.lock names, taken from
// Debian's librust-*-dev packages, which carry crate sources under
// /usr/share/cargo/registry: crates.io is out of reach here, and these are
// the crates as published, not code written for this test. crates are the
// crate sources by name-version (crateSources), among them every locked one.
func vendorCrates(t testing.TB, crates map[string]string, projects ...string) {
	t.Helper()
	pkg := regexp.MustCompile(`(?m)^name = "([^"]+)"\nversion = "([^"]+)"\nsource = "registry\+`)
	for _, p := range projects {
		lock, err := os.ReadFile(filepath.Join(p, "Cargo.lock"))
		if err != nil {
			t.Fatal(err)
		}
		locked := pkg.FindAllStringSubmatch(string(lock), -1)
		if len(locked) == 0 {
			t.Fatalf("%s: Cargo.lock names no crates of a registry", p)
		}
		for _, m := range locked {
			src, ok := crates[m[1]+"-"+m[2]]
			if !ok {
				t.Fatalf("%s: Cargo.lock wants %s %s, which no Debian package given carries", p, m[1], m[2])
			}
			if err := os.MkdirAll(filepath.Join(p, "vendor"), 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("cp", "-R", src, filepath.Join(p, "vendor", m[1]+"-"+m[2])).CombinedOutput(); err != nil {
				t.Fatalf("vendor %s: %v %s", m[1], err, out)
			}
		}
		t.Logf("%s: %d crates vendored from Debian", filepath.Base(p), len(locked))
	}
}

// crateSources downloads the librust-*-dev packages of roots' dependency
// closure and returns each crate's source directory by name-version.
func (d *debianArchive) crateSources(roots []string) map[string]string {
	d.t.Helper()
	args := append([]string{"depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks",
		"--no-replaces", "--no-enhances"}, roots...)
	seen := map[string]bool{}
	var names []string
	for _, l := range strings.Split(d.run("", "apt-cache", args...), "\n") {
		// Unindented lines are packages; names with '+' are the virtual
		// packages of crate features, provided by the real ones.
		if strings.HasPrefix(l, "librust-") && !strings.Contains(l, "+") && !seen[l] {
			seen[l] = true
			names = append(names, l)
		}
	}
	crates := map[string]string{} // name-version -> source directory
	for _, root := range d.download(names...) {
		dirs, _ := filepath.Glob(filepath.Join(root, "usr/share/cargo/registry/*"))
		for _, dir := range dirs {
			crates[filepath.Base(dir)] = dir
		}
	}
	return crates
}

// rustCrateRoots are the Debian packages whose closure holds the crates of
// the Rust fixtures: axum, tokio, serde_json and openssl with their
// dependencies.
var rustCrateRoots = []string{"librust-axum-dev", "librust-tokio-dev", "librust-serde-json-dev", "librust-openssl-dev"}
