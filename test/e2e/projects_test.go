package e2e

import (
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Projects this repository did not shape build as they are, in one release:
//   - web: the app create-next-app@15 generates (testdata/create-next-app: its
//     files and the package-lock.json npm wrote; only its next/font/google
//     import is replaced, which needs Google at build time): TypeScript, no
//     output: "standalone", a public/ dir, its page at /;
//   - api: a Rust workspace (testdata/rust-workspace) whose member has two
//     binaries and a feature: services.yaml picks the member, the binary and
//     the feature;
//   - digest: a single-binary Rust crate linking OpenSSL through
//     openssl-sys: with system-packages: [libssl-dev], cross-compiled for
//     arm64 against libssl-dev:arm64, and its libraries shipped in the
//     runtime. Both Rust projects build from real crates (axum, tokio,
//     hyper, serde_json, openssl, ...) from Debian's packages of their
//     sources: the workspace vendors them (its .cargo/config.toml), digest
//     fetches them from the private cargo registry given to build-all
//     (--cargo-registry, --cargo-token), which this test serves;
//   - quotes: a FastAPI project (testdata/fastapi-quotes) with a
//     pyproject.toml and no requirements.txt, started by its command
//     (uvicorn main:app ...), installed from a package index this test
//     serves with credentials: real distributions repacked from Debian's
//     packages, FastAPI, Starlette, uvicorn, pydantic and pydantic-core, the
//     last as one wheel per architecture.
//
// The crates, Python and npm packages come from the registries and index
// given to build-all, each wanting a credential that must show up nowhere.
//
// Every image of both platforms starts and passes the health check it
// declares: the prober the pipeline adds, or quotes' own health-command. Then
// each way to get a project wrong stops with the sentence that says so.
func TestProjectsAsTheyAre(t *testing.T) {
	src := t.TempDir()
	for dir, fixture := range map[string]string{"web": "create-next-app", "workspace": "rust-workspace", "digest": "openssl-digest", "quotes": "fastapi-quotes"} {
		cp := exec.Command("cp", "-R", filepath.Join(repoRoot(t), "test", "e2e", "testdata", fixture), filepath.Join(src, dir))
		if out, err := cp.CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v %s", fixture, err, out)
		}
	}
	if cfg, err := os.ReadFile(filepath.Join(src, "web", "next.config.ts")); err != nil || strings.Contains(string(cfg), "standalone") {
		t.Fatalf("the app's next.config.ts should be as generated, without standalone output (%v):\n%s", err, cfg)
	}
	write := func(rel, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, rel), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const (
		web    = "  - {name: web, language: nextjs, path: web, port: 3000, health: /}\n"
		api    = "  - {name: api, language: rust, path: workspace, package: api-server, binary: api, features: [greeting], port: 8080, health: /health}\n"
		digest = "  - {name: digest, language: rust, path: digest, system-packages: [libssl-dev], port: 8080, health: /health}\n"
		// quotes checks its health with a command of its own, not the prober.
		quotes = "  - {name: quotes, language: python, path: quotes, command: uvicorn main:app --host 0.0.0.0 --port 8000, port: 8000,\n" +
			"     health-command: [python3, -c, \"import urllib.request as u; print('quotes health', u.urlopen('http://127.0.0.1:8000/health').status)\"]}\n"
	)
	write("services.yaml", "services:\n"+web+api+digest+quotes)
	debian := newDebianArchive(t)
	crates := debian.crateSources(rustCrateRoots)
	vendorCrates(t, crates, filepath.Join(src, "workspace"))
	// digest has no vendor/: its crates come from the registry.
	if err := os.RemoveAll(filepath.Join(src, "digest", ".cargo")); err != nil {
		t.Fatal(err)
	}
	cargo := serveCargoRegistry(t, crates, cargoToken)
	cargo.lockToRegistry(t, filepath.Join(src, "digest"))
	t.Setenv("CARGO_TOKEN", cargoToken)
	index := servePyIndex(t, debian.pythonWheels(pythonIndexPackages...), "botcore", pipPassword)
	t.Setenv("PIP_CREDENTIALS", "botcore:"+pipPassword)
	npm := serveNpmProxy(t, npmToken)
	t.Setenv("NPM_TOKEN", npmToken)
	call := []string{"--source", src, "--tool", hostTool(t).path, "build-all", "--trivy-db", offlineDB(t), "--version", "v0.3.0", "--build-only",
		"--pip-index-url", index.URL, "--pip-credentials", "env://PIP_CREDENTIALS", "--npm-registry", npm.URL, "--npm-token", "env://NPM_TOKEN",
		"--cargo-registry", cargo.Index, "--cargo-token", "env://CARGO_TOKEN"}

	out := t.TempDir()
	logs, err := daggerCallErr(t, repoRoot(t), append(call, "export", "--path", out)...)
	if err != nil {
		t.Fatalf("build-all: %v\n%s", err, tail(logs, 60))
	}
	rel := readRelease(t, out)
	if len(rel.Services) != 4 {
		t.Fatalf("release.json lists %d services, want web, api, digest and quotes", len(rel.Services))
	}
	for _, svc := range rel.Services {
		// What each image declares, and what its check said in the gate.
		check := map[string][]string{"web": {probePath, "http://127.0.0.1:3000/"}, "api": {probePath, "http://127.0.0.1:8080/health"},
			"digest": {probePath, "http://127.0.0.1:8080/health"},
			"quotes": {"python3", "-c", "import urllib.request as u; print('quotes health', u.urlopen('http://127.0.0.1:8000/health').status)"}}[svc.Name]
		said := "GET " + check[len(check)-1] + " answered 200"
		if svc.Name == "quotes" {
			said = "quotes health 200"
		}
		for _, p := range []string{"linux/amd64", "linux/arm64"} {
			if got := rel.StartCheck.Results[svc.Name+" "+p]; !strings.HasSuffix(got, ": "+said) {
				t.Errorf("%s %s: the start-up check said %q, want %q", svc.Name, p, got, said)
			}
			img := layoutImage(t, filepath.Join(out, svc.Layout), p)
			checkDeclaredHealthcheck(t, img, p, check)
			switch svc.Name {
			case "web":
				files := imageFiles(t, img, "app/server.js", "app/public/next.svg")
				if files["app/server.js"] == "" || files["app/public/next.svg"] == "" {
					t.Errorf("web %s: no standalone server or public/ in the image", p)
				}
			case "api":
				bin := imageFiles(t, img, "usr/local/bin/api")["usr/local/bin/api"]
				if !strings.Contains(bin, "greeting-feature-enabled") || strings.Contains(bin, "migrations: nothing to do") {
					t.Errorf("api %s: the image does not ship api-server's api built with the greeting feature", p)
				}
			case "digest":
				checkDigestLibraries(t, img, p, filepath.Join(out, svc.Reports[p].SBOM))
			case "quotes":
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.Join(cf.Config.Entrypoint, " "); got != "uvicorn main:app --host 0.0.0.0 --port 8000" {
					t.Errorf("quotes %s: entrypoint %q, want the declared command", p, got)
				}
				if !slices.ContainsFunc(cf.Config.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=/opt/venv/bin:") }) {
					t.Errorf("quotes %s: environment %q: the virtual environment is not first on PATH", p, cf.Config.Env)
				}
				checkQuotesVenv(t, img, p)
			}
			t.Logf("%s %s: runtime image %d bytes", svc.Name, p, svc.Sizes[p])
		}
	}
	// pip fetched from the test's index, with the credentials: each
	// platform its own compiled wheel, and the build backend for the project.
	fetched := index.fetched()
	for _, w := range []string{"pydantic_core-*-linux_x86_64.whl", "pydantic_core-*-linux_aarch64.whl", "fastapi-*.whl", "uvicorn-*.whl", "hatchling-*.whl"} {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(fetched)), func(f string) bool { ok, _ := path.Match(w, f); return ok }) {
			t.Errorf("pip did not fetch %s from the index (fetched: %v)", w, fetched)
		}
	}
	// cargo fetched every crate digest locks from the registry given, with
	// its token; the workspace kept to its own vendored crates.
	downloaded, refused := cargo.counts()
	lockedCrates := regexp.MustCompile(`(?m)^name = "([^"]+)"\nversion = "([^"]+)"\nsource = "registry\+`).
		FindAllStringSubmatch(string(mustRead(t, filepath.Join(src, "digest", "Cargo.lock"))), -1)
	for _, m := range lockedCrates {
		if downloaded[m[1]+"-"+m[2]] == 0 {
			t.Errorf("cargo did not fetch %s %s from the registry given (fetched: %v)", m[1], m[2], downloaded)
		}
	}
	for nv := range downloaded {
		if strings.HasPrefix(nv, "axum-") || strings.HasPrefix(nv, "tokio-") {
			t.Errorf("cargo fetched %s, which only the workspace uses, from the registry: its own .cargo/config.toml should win", nv)
		}
	}
	t.Logf("cargo fetched %d crates from the registry given (%d requests without the token)", len(downloaded), refused)

	// npm ci fetched every package the app needs on any platform from the
	// registry given, with its token: the registry's own cache volume
	// starts empty.
	required := requiredNpmPackages(t, filepath.Join(src, "web", "package-lock.json"))
	if tarballs, refused := npm.counts(); tarballs < required {
		t.Errorf("npm fetched %d packages from the registry given (%d requests without the token); the lockfile requires %d", tarballs, refused, required)
	} else {
		t.Logf("npm fetched %d packages from the registry given (%d requests without the token; %d required by the lockfile)", tarballs, refused, required)
	}

	for _, c := range []struct {
		name, manifest, want string
		before               func()
	}{
		{"a health path the app does not serve", strings.Replace(web, "health: /}", "health: /nope}", 1),
			"its health check /usr/local/bin/botcore-probe http://127.0.0.1:3000/nope did not pass within 30s (last: status 1: botcore-probe: GET http://127.0.0.1:3000/nope answered 404)", nil},
		{"two binaries and no binary:", strings.Replace(api, " binary: api,", "", 1),
			"service api: the build made 2 executables (api migrate): name the one to ship with binary: in services.yaml", nil},
		{"a Python service without its command", strings.Replace(quotes, " command: uvicorn main:app --host 0.0.0.0 --port 8000,", "", 1),
			"(quotes has no command: in services.yaml, so it was started as python3 -m app.main", nil},
		{"a command naming a module the project does not have", strings.Replace(quotes, "uvicorn main:app", "uvicorn mian:app", 1),
			`Could not import module "mian"`, nil},
		{"a path that is not in the source", strings.Replace(quotes, "path: quotes", "path: nowhere", 1),
			"service quotes: its path nowhere is not a directory of the source", nil},
		{"no Cargo.lock", api, "service api: no Cargo.lock in workspace: the build is --locked",
			func() { _ = os.Remove(filepath.Join(src, "workspace", "Cargo.lock")) }},
	} {
		write("services.yaml", "services:\n"+c.manifest)
		if c.before != nil {
			c.before()
		}
		stderr, err := daggerCallErr(t, repoRoot(t), append(call, "--platforms", "linux/amd64", "--start-timeout", "30", "export", "--path", t.TempDir())...)
		if err == nil || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: build-all did not stop saying %q (%v):\n%s", c.name, c.want, err, tail(stderr, 20))
		}
		logs += stderr
	}
	checkNoSecrets(t, []byte(logs), out, "", pipPassword, npmToken, cargoToken)
}

// pythonIndexPackages are the Debian packages the test's Python index
// repacks: FastAPI and uvicorn with their dependency tree, and hatchling
// with its own, the build backend pip fetches to install the project itself.
// (Not setuptools: Debian's imports the libraries upstream vendors.)
var pythonIndexPackages = []string{"python3-fastapi", "python3-starlette", "python3-pydantic", "python3-pydantic-core",
	"python3-annotated-types", "python3-typing-extensions", "python3-anyio", "python3-sniffio", "python3-idna",
	"python3-uvicorn", "python3-h11", "python3-click",
	"python3-hatchling", "python3-packaging", "python3-pathspec", "python3-pluggy", "python3-trove-classifiers"}

// pipPassword is the index's password: planted, so that the test can prove
// it never reaches a log, a file of the release or a layer.
var pipPassword = "pip-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-planted"

// requiredNpmPackages counts the packages of a lockfile that are not
// optional (platform-specific builds are).
func requiredNpmPackages(t *testing.T, lockfile string) int {
	t.Helper()
	b, err := os.ReadFile(lockfile)
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Packages map[string]struct {
			Optional bool `json:"optional"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatal(err)
	}
	n := 0
	for p, v := range lock.Packages {
		if p != "" && !v.Optional {
			n++
		}
	}
	return n
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cargoToken is the cargo registry's token, planted likewise.
var cargoToken = "cargo-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-PLANTED"

// npmToken is the npm registry's token, planted likewise.
var npmToken = "npm_" + strconv.FormatInt(time.Now().UnixNano(), 36) + "PLANTED"

// checkDigestLibraries: OpenSSL's libraries of the image's own architecture
// are in the runtime, recorded as the package that brought them, which the
// SBOM then lists.
func checkDigestLibraries(t *testing.T, img v1.Image, platform, sbom string) {
	t.Helper()
	triple := map[string]string{"linux/amd64": "x86_64-linux-gnu", "linux/arm64": "aarch64-linux-gnu"}[platform]
	lib := "usr/lib/" + triple + "/libcrypto.so.3"
	const status = "var/lib/dpkg/status.d/libssl3t64"
	files := imageFiles(t, img, lib, status, "usr/local/bin/digest")
	if _, ok := files[lib]; !ok {
		t.Errorf("digest %s: no %s in the runtime", platform, lib)
	}
	if !strings.Contains(files[status], "Package: libssl3t64") || !strings.Contains(files[status], "Architecture: "+strings.TrimPrefix(platform, "linux/")) {
		t.Errorf("digest %s: %s is not the package record of this architecture's libssl3t64:\n%s", platform, status, files[status])
	}
	if doc, err := os.ReadFile(sbom); err != nil || !strings.Contains(string(doc), `"name": "libssl3t64"`) && !strings.Contains(string(doc), `"name":"libssl3t64"`) {
		t.Errorf("digest %s: the SBOM %s does not list libssl3t64 (%v)", platform, sbom, err)
	}
}

// checkQuotesVenv: the environment holds this platform's compiled wheel
// only, the project installed as a package, and neither pip nor the build
// backend.
func checkQuotesVenv(t *testing.T, img v1.Image, platform string) {
	t.Helper()
	const site = "opt/venv/lib/python3.13/site-packages/"
	own, other := "x86_64", "aarch64"
	if platform == "linux/arm64" {
		own, other = other, own
	}
	so := func(a string) string { return site + "pydantic_core/_pydantic_core.cpython-313-" + a + "-linux-gnu.so" }
	want := []string{so(own), site + "quotes-0.1.0.dist-info/METADATA", site + "fastapi/__init__.py", "opt/venv/bin/uvicorn"}
	unwanted := []string{so(other), "opt/venv/bin/pip", site + "hatchling/__init__.py"}
	files := imageFiles(t, img, append(want, unwanted...)...)
	for _, f := range want {
		if _, ok := files[f]; !ok {
			t.Errorf("quotes %s: no %s in the image", platform, f)
		}
	}
	for _, f := range unwanted {
		if _, ok := files[f]; ok {
			t.Errorf("quotes %s: %s should not be in the image", platform, f)
		}
	}
}
