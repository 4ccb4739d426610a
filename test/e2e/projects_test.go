package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Projects this repository did not shape build as they are, in one release:
//   - web: the app create-next-app@15 generates (testdata/create-next-app: its
//     files and the package-lock.json npm wrote; only its next/font/google
//     import is replaced, which needs Google at build time): TypeScript, no
//     output: "standalone", a public/ dir, its page at /;
//   - api: a Rust workspace (testdata/rust-workspace) whose member has two
//     binaries and a feature: services.yaml picks the member, the binary and
//     the feature;
//   - site: a Python service without the example's app package, started by
//     its command: CPython's own http.server.
//
// Every image of both platforms starts and answers its health path. Then
// each way to get a project wrong stops with the sentence that says so.
func TestProjectsAsTheyAre(t *testing.T) {
	src := t.TempDir()
	for dir, fixture := range map[string]string{"web": "create-next-app", "workspace": "rust-workspace"} {
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
	write("site/index.html", "<p>served by python</p>\n")
	const (
		web  = "  - {name: web, language: nextjs, path: web, port: 3000, health: /}\n"
		api  = "  - {name: api, language: rust, path: workspace, package: api-server, binary: api, features: [greeting], port: 8080, health: /health}\n"
		site = "  - {name: site, language: python, path: site, command: python3 -m http.server 8000 --bind 0.0.0.0, port: 8000, health: /index.html}\n"
	)
	write("services.yaml", "services:\n"+web+api+site)
	call := []string{"--source", src, "--tool", hostTool(t).path, "build-all", "--trivy-db", offlineDB(t), "--version", "v0.3.0", "--build-only"}

	out := t.TempDir()
	daggerCall(t, append(call, "export", "--path", out)...)
	rel := readRelease(t, out)
	for _, svc := range rel.Services {
		health := map[string]string{"web": "GET / on port 3000", "api": "GET /health on port 8080", "site": "GET /index.html on port 8000"}[svc.Name]
		for _, p := range []string{"linux/amd64", "linux/arm64"} {
			if got := rel.StartCheck.Results[svc.Name+" "+p]; !strings.Contains(got, health+" answered 200") {
				t.Errorf("%s %s: the start-up check said %q", svc.Name, p, got)
			}
			img := layoutImage(t, filepath.Join(out, svc.Layout), p)
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
			case "site":
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.Join(cf.Config.Entrypoint, " "); got != "python3 -m http.server 8000 --bind 0.0.0.0" {
					t.Errorf("site %s: entrypoint %q, want the declared command", p, got)
				}
				if !slices.ContainsFunc(cf.Config.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=/opt/venv/bin:") }) {
					t.Errorf("site %s: environment %q: the virtual environment is not first on PATH", p, cf.Config.Env)
				}
			}
			t.Logf("%s %s: runtime image %d bytes", svc.Name, p, svc.Sizes[p])
		}
	}

	for _, c := range []struct {
		name, manifest, want string
		before               func()
	}{
		{"two binaries and no binary:", strings.Replace(api, " binary: api,", "", 1),
			"service api: the build made 2 executables (api migrate): name the one to ship with binary: in services.yaml", nil},
		{"a Python service without its command", strings.Replace(site, " command: python3 -m http.server 8000 --bind 0.0.0.0,", "", 1),
			"(site has no command: in services.yaml, so it was started as python3 -m app.main", nil},
		{"a path that is not in the source", strings.Replace(site, "path: site", "path: nowhere", 1),
			"service site: its path nowhere is not a directory of the source", nil},
		{"no Cargo.lock", api, "service api: no Cargo.lock in workspace: the build is --locked",
			func() { _ = os.Remove(filepath.Join(src, "workspace", "Cargo.lock")) }},
	} {
		write("services.yaml", "services:\n"+c.manifest)
		if c.before != nil {
			c.before()
		}
		stderr, err := daggerCallErr(t, repoRoot(t), append(call, "--platforms", "linux/amd64", "export", "--path", t.TempDir())...)
		if err == nil || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: build-all did not stop saying %q (%v):\n%s", c.name, c.want, err, tail(stderr, 20))
		}
	}
}
