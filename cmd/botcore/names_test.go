package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestBadNamesTouchNothing: every service name or registry prefix that
// could leave its repository or output directory is refused with one
// sentence, before any registry is contacted or any file written.
func TestBadNamesTouchNothing(t *testing.T) {
	var hits atomic.Int32
	tripwire := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "no request was expected", http.StatusTeapot)
	}))
	t.Cleanup(tripwire.Close)
	host := strings.TrimPrefix(tripwire.URL, "http://")

	dir := t.TempDir()
	out := filepath.Join(dir, "images")
	env := map[string]string{
		"DOCKER_REGISTRY": host + "/acme/bot-core",
		"DOCKER_USERNAME": "u", "DOCKER_PASSWORD": "p",
		"DOCKER_CONFIG": filepath.Join(dir, "docker"),
		"HOME":          dir,
		// No Docker engine: pull would write OCI layouts under -o.
		"DOCKER_HOST": "unix://" + filepath.Join(dir, "nobody.sock"),
	}
	const badService = "invalid service name"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cleanup parent", []string{"cleanup", "--keep", "1", "--yes", "-s", "../x"}, badService + ` "../x"`},
		{"cleanup slash", []string{"cleanup", "--keep", "1", "--yes", "-s", "rust-core-engine", "-s", "a/b"}, badService + ` "a/b"`},
		{"versions parent", []string{"versions", "-s", ".."}, badService + ` ".."`},
		{"versions upper-case", []string{"versions", "-s", "Rust-Core-Engine"}, badService},
		{"pull out of the output dir", []string{"pull", "--version", "v1.0.0", "-o", out, "-s", "../../etc"}, badService + ` "../../etc"`},
		{"inspect parent", []string{"inspect", "../x:v1.0.0"}, `invalid image "../x:v1.0.0"`},
		{"inspect dot-dot", []string{"inspect", "..:v1.0.0"}, badService + ` ".."`},
		{"localhost without port", []string{"--registry", "localhost/bot-core", "versions"}, "give localhost's port explicitly"},
		{"prefix with a tag", []string{"--registry", host + "/acme:v1", "versions"}, "it has a tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			r := botcore(t, env, "", tc.args...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("want a failure mentioning %q, got %s", tc.want, r)
			}
			// One sentence: the error line, plus at most kong's usage hint.
			for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
				if !strings.HasPrefix(line, "botcore: ") {
					t.Errorf("stray stderr line %q in %s", line, r)
				}
			}
			if n := hits.Load() - before; n != 0 {
				t.Errorf("%d requests reached the registry", n)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("the output directory was created (%v)", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "etc")); !os.IsNotExist(err) {
				t.Errorf("pull wrote outside its output directory (%v)", err)
			}
		})
	}
}
