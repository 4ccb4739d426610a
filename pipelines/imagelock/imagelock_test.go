package imagelock

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

const (
	d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func pinnedLock() Lock {
	l := Lock{}
	for _, role := range Roles {
		l[role] = Pin(Defaults[role], d1)
	}
	return l
}

func TestFormatParsesBackPinned(t *testing.T) {
	l := pinnedLock()
	l[Go] = Pin("127.0.0.1:5000/mirror/golang:1.26-bookworm@"+d2, d1)
	got, err := Parse(l.Format())
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Pinned(); err != nil {
		t.Fatal(err)
	}
	for _, role := range Roles {
		if got[role] != l[role] {
			t.Errorf("%s: wrote %q, read %q", role, l[role], got[role])
		}
	}
	if got[Go] != "127.0.0.1:5000/mirror/golang:1.26-bookworm@"+d1 {
		t.Errorf("Pin kept the old digest: %s", got[Go])
	}
	if got.Tag(Go) != "127.0.0.1:5000/mirror/golang:1.26-bookworm" {
		t.Errorf("Tag(go) = %q", got.Tag(Go))
	}
}

func TestBadLockfilesNameTheEntry(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"rust-buildr: rust:1@" + d1 + "\n", `unknown image "rust-buildr"`},
		{"rust-builder: rust:1@sha256:abc\n", "rust-builder: \"rust:1@sha256:abc\": the digest must be sha256: and 64"},
		{"rust-builder: [a, b]\n", "images.lock: yaml: unmarshal errors"},
		{"rust-builder: \"UPPER/Case:x\"\n", `rust-builder: "UPPER/Case:x" is not an image reference`},
		{"rust-builder: \"\"\n", "rust-builder: empty image reference"},
	} {
		_, err := Parse([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestPinnedNamesWhatIsMissingOrUnpinned(t *testing.T) {
	l := pinnedLock()
	delete(l, NodeRuntime)
	if err := l.Pinned(); err == nil || !strings.Contains(err.Error(), "images.lock has no node-runtime image") {
		t.Errorf("missing role: %v", err)
	}
	l = pinnedLock()
	l[Tools] = "debian:bookworm-slim"
	if err := l.Pinned(); err == nil || !strings.Contains(err.Error(), "tools debian:bookworm-slim is not pinned by digest") {
		t.Errorf("tag only: %v", err)
	}
	empty, err := Parse([]byte("# nothing yet\n"))
	if err != nil || empty.Pinned() == nil {
		t.Errorf("a lockfile of comments parses (%v) but is not pinned", err)
	}
	if empty.Tag(RustRuntime) != Defaults[RustRuntime] {
		t.Errorf("an empty lock refreshes the default, got %q", empty.Tag(RustRuntime))
	}
}

// The Renovate configuration shipped in .github must find every entry the
// lockfile writes, with the parts Renovate's docker datasource looks up.
func TestRenovateFindsEveryEntry(t *testing.T) {
	raw, err := os.ReadFile("../../.github/renovate.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		CustomManagers []struct {
			ManagerFilePatterns []string `json:"managerFilePatterns"`
			MatchStrings        []string `json:"matchStrings"`
			Datasource          string   `json:"datasourceTemplate"`
		} `json:"customManagers"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.CustomManagers) != 1 || len(cfg.CustomManagers[0].MatchStrings) != 1 || cfg.CustomManagers[0].Datasource != "docker" {
		t.Fatalf("want one docker regex manager, got %+v", cfg.CustomManagers)
	}
	cm := cfg.CustomManagers[0]
	files := regexp.MustCompile(strings.Trim(cm.ManagerFilePatterns[0], "/"))
	for _, p := range []string{"images.lock", "deploy/images.lock"} {
		if !files.MatchString(p) {
			t.Errorf("managerFilePatterns miss %s", p)
		}
	}
	re := regexp.MustCompile(cm.MatchStrings[0])
	l := pinnedLock()
	l[RustRuntime] = Pin("registry.example.com:5443/distroless/cc-debian13:nonroot", d2)
	matches := re.FindAllStringSubmatch(string(l.Format()), -1)
	if len(matches) != len(Roles) {
		t.Fatalf("renovate's pattern found %d entries of %d in\n%s", len(matches), len(Roles), l.Format())
	}
	for i, m := range matches {
		got := map[string]string{}
		for j, n := range re.SubexpNames() {
			if n != "" {
				got[n] = m[j]
			}
		}
		role := Roles[i]
		image, digest, _ := Split(l[role])
		if got["depName"]+":"+got["currentValue"] != image || got["currentDigest"] != digest {
			t.Errorf("%s: renovate reads %v from %q", role, got, l[role])
		}
	}
}
