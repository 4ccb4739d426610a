package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/bot-core/delivery/cmd/botcore/internal/buildinfo"
	"github.com/bot-core/delivery/pipelines/release"
)

// version names the libraries go.mod selects, as linked into the binary.
func TestVersion(t *testing.T) {
	r := botcore(t, nil, "", "version", "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	var id release.Tool
	if err := json.Unmarshal([]byte(r.stdout), &id); err != nil {
		t.Fatalf("%v in %q", err, r.stdout)
	}
	if id.Go != runtime.Version() || id.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("go %q platform %q, want %s %s/%s", id.Go, id.Platform, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(bin); id.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("sha256 %q, the executable's is %x", id.SHA256, sum)
	}
	for name, path := range buildinfo.Libraries {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", path).Output()
		if err != nil {
			t.Fatalf("go list -m %s: %v", path, err)
		}
		if want := strings.TrimSpace(string(out)); id.Libraries[name] != want {
			t.Errorf("%s: version says %q, go.mod selects %q", name, id.Libraries[name], want)
		}
	}

	r = botcore(t, nil, "", "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "botcore ") || !strings.Contains(r.stdout, "; trivy "+id.Libraries["trivy"]) {
		t.Errorf("version line: %s", r)
	}
}
