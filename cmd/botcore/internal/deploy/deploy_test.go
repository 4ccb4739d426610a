package deploy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

func TestDeployState(t *testing.T) {
	dir := t.TempDir()
	path := StateFile(filepath.Join(dir, "docker-compose.prod.yml"), "bot-core")
	if path != filepath.Join(dir, ".botcore-deploy.bot-core.json") {
		t.Fatalf("StateFile = %s", path)
	}
	if st, err := LoadState(path); st != nil || err != nil {
		t.Fatalf("missing state file: %v, %v", st, err)
	}
	st := &State{
		Project:  "bot-core",
		Running:  &Release{Version: "v1.1.0", Images: []Image{{Service: "a", Digest: "sha256:11", Verified: true}}},
		Previous: &Release{Version: "v1.0.0", Images: []Image{{Service: "a", Digest: "sha256:10"}}},
		Updated:  time.Now().UTC(),
	}
	if err := st.Save(path); err != nil {
		t.Fatal(err)
	}
	// Another command (cleanup) reads these names: they must not change.
	var raw struct {
		Running struct {
			Images []map[string]any `json:"images"`
		} `json:"running"`
		Previous struct {
			Images []map[string]any `json:"images"`
		} `json:"previous"`
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Running.Images) != 1 || raw.Running.Images[0]["digest"] != "sha256:11" || raw.Running.Images[0]["verified"] != true ||
		len(raw.Previous.Images) != 1 || raw.Previous.Images[0]["digest"] != "sha256:10" {
		t.Errorf("state file:\n%s", b)
	}
	got, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Digests(); !slices.Equal(d, []string{"sha256:11", "sha256:10"}) {
		t.Errorf("Digests = %v", d)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".botcore-deploy-*.tmp")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(path); err == nil || !strings.Contains(err.Error(), path+" is not valid JSON") {
		t.Errorf("corrupt state file: %v", err)
	}
}

func img(service, digest, version string) Image {
	return Image{Service: service, Digest: digest, Version: version}
}

func TestDeployRollbackTarget(t *testing.T) {
	d, err := New(Config{ComposeFile: "c.yml", ProjectName: "p"})
	if err != nil {
		t.Fatal(err)
	}
	running := &Release{Images: []Image{img("a", "sha256:a1", "v1"), img("b", "sha256:b1", "v1"), img("c", "sha256:c0", "v0")}}

	target, err := d.rollbackTarget(running, []string{"a", "b"})
	if err != nil || target.Version != "v1" || len(target.Images) != 2 {
		t.Errorf("a, b: %+v, %v", target, err)
	}
	if target, err := d.rollbackTarget(running, []string{"x"}); target != nil || err != nil {
		t.Errorf("a service that does not run: %+v, %v", target, err)
	}
	var mixed *MixedVersionsError
	if _, err := d.rollbackTarget(running, []string{"a", "c"}); !errors.As(err, &mixed) {
		t.Errorf("two versions: %v", err)
	}

	// merge: what runs once a release of a and d is up.
	rel := &Release{Version: "v2", Images: []Image{img("a", "sha256:a2", ""), img("d", "sha256:d2", "")}}
	got := merge(running, rel)
	var digests []string
	for _, i := range got.Images {
		digests = append(digests, i.Service+"@"+i.Digest+"/"+i.Version)
	}
	if want := []string{"a@sha256:a2/v2", "b@sha256:b1/v1", "c@sha256:c0/v0", "d@sha256:d2/v2"}; !slices.Equal(digests, want) {
		t.Errorf("merge = %v, want %v", digests, want)
	}
	if sameDigests(target, rel) || !sameDigests(target, target) {
		t.Error("sameDigests")
	}
}

func TestDeployReleaseImage(t *testing.T) {
	d, err := New(Config{ComposeFile: "c.yml", ProjectName: "p", ReleaseRepo: "ghcr.io/acme/bot-core"})
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]bool{
		"ghcr.io/acme/bot-core/rust-core-engine:v1": true,
		"ghcr.io/acme/bot-core-fork/x:v1":           false,
		"ghcr.io/other/x:v1":                        false,
		"redis:7":                                   false,
	} {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.releaseImage(r); got != want {
			t.Errorf("releaseImage(%s) = %v", ref, got)
		}
	}
	if _, err := New(Config{ComposeFile: "c.yml", ProjectName: "p", ReleaseRepo: "UPPER/Case"}); err == nil {
		t.Error("an invalid release registry was accepted")
	}
}
