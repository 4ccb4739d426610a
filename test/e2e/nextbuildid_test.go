package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// An app whose next.config has no generateBuildId (the create-next-app
// template) gets its Next build ID from its files: two builds of the same
// files get the same ID, a one-byte change to a page a new one, and an app
// that names its own ID keeps it.
func TestNextBuildIDFollowsTheApp(t *testing.T) {
	src := t.TempDir()
	web := filepath.Join(src, "web")
	if err := os.CopyFS(web, os.DirFS(filepath.Join(repoRoot(t), "test", "e2e", "testdata", "create-next-app"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "services.yaml"), []byte("services:\n  - {name: web, language: nextjs, path: web, port: 3000, health: /}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(web, "next.config.ts")
	generated, err := os.ReadFile(config)
	if err != nil || strings.Contains(string(generated), "generateBuildId") {
		t.Fatalf("next.config.ts should be as create-next-app wrote it, without generateBuildId (%v):\n%s", err, generated)
	}
	// Each build has its own build key: the keys are part of the build
	// step's inputs, so Next really runs again each time. The run's own
	// nonce keeps an engine that ran this test before from replaying the
	// build (a replayed exec prints no log).
	run := fmt.Sprint(time.Now().UnixNano())
	buildID := func(key string) (string, string) {
		t.Helper()
		t.Setenv("BOTCORE_TEST_BUILD_KEY", key+"-"+run)
		stdout, stderr, err := runDagger(t, repoRoot(t), "call", "--progress=plain", "--source", src, "--build-key", "env:BOTCORE_TEST_BUILD_KEY",
			"build", "--service", "web", "--source-date-epoch", "1700000000", "file", "--path", "/app/.next/BUILD_ID", "contents")
		if err != nil {
			t.Fatalf("build web with key %s: %v\n%s", key, err, tail(stderr, 40))
		}
		return strings.TrimSpace(stdout), stderr
	}
	first, logs := buildID("first")
	if !regexp.MustCompile(`^[bcefghijkmnpqrstuvwxyz0-9]{21}$`).MatchString(first) {
		t.Fatalf("BUILD_ID %q is not an ID drawn from the app's files", first)
	}
	if want := "next build id: " + first + ", from the app's files"; !strings.Contains(logs, want) {
		t.Errorf("the build log does not say %q:\n%s", want, tail(logs, 40))
	}
	if again, _ := buildID("second"); again != first {
		t.Errorf("two builds of the same files: BUILD_ID %q, then %q", first, again)
	}

	page := filepath.Join(web, "app", "page.tsx")
	data, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, _ := buildID("first")
	if changed == first || len(changed) != len(first) {
		t.Errorf("after a one-byte change to app/page.tsx, BUILD_ID %q (was %q): want another ID of the same kind", changed, first)
	}

	own := strings.Replace(string(generated), "const nextConfig: NextConfig = {", "const nextConfig: NextConfig = {\n  generateBuildId: async () => \"release-7\",", 1)
	if own == string(generated) {
		t.Fatal("could not add generateBuildId to next.config.ts")
	}
	if err := os.WriteFile(config, []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	// The log shows the preloaded script too: only a printed ID counts.
	if id, logs := buildID("first"); id != "release-7" || regexp.MustCompile(`next build id: \w{21},`).MatchString(logs) {
		t.Errorf("with the app's own generateBuildId: BUILD_ID %q, want release-7 and no ID of the pipeline's", id)
	}
}
