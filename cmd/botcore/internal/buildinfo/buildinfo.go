// Package buildinfo names the botcore binary that is running: the source it
// was built from and the versions of the supply-chain libraries linked in.
// build-all records it in release.json and the provenance, so a release says
// which scanner, SBOM generator and signer produced its evidence.
package buildinfo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/bot-core/delivery/pipelines/release"
)

// Libraries are the modules whose versions decide what a scan, an SBOM or a
// signature contains.
var Libraries = map[string]string{
	"trivy":  "github.com/aquasecurity/trivy",
	"syft":   "github.com/anchore/syft",
	"cosign": "github.com/sigstore/cosign/v2",
	"ggcr":   "github.com/google/go-containerregistry",
}

// Read is the running binary's identity, its executable hashed.
func Read() (release.Tool, error) {
	id := release.Tool{Version: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Libraries: map[string]string{}}
	var err error
	if id.SHA256, err = executableSHA256(); err != nil {
		return id, err
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return id, nil
	}
	id.Version = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			id.Revision = s.Value
		case "vcs.modified":
			id.Modified = s.Value == "true"
		}
	}
	for name, path := range Libraries {
		if v := dep(bi, path); v != "" {
			id.Libraries[name] = v
		}
	}
	return id, nil
}

func executableSHA256() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("cannot find the running executable: %w", err)
	}
	f, err := os.Open(exe)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("cannot hash %s: %w", exe, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Library is the linked version of the module at path ("" when it is not
// linked), its replacement's when replaced.
func Library(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	return dep(bi, path)
}

func dep(bi *debug.BuildInfo, path string) string {
	for _, d := range bi.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}

// Line is the one-line form: botcore VERSION (REVISION) GO PLATFORM; libraries.
func Line(id release.Tool) string {
	var b strings.Builder
	b.WriteString("botcore " + id.Version)
	if id.Revision != "" {
		rev := id.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if id.Modified {
			rev += "+modified"
		}
		b.WriteString(" (" + rev + ")")
	}
	b.WriteString(" " + id.Go + " " + id.Platform)
	for _, name := range []string{"trivy", "syft", "cosign", "ggcr"} {
		if v := id.Libraries[name]; v != "" {
			b.WriteString("; " + name + " " + v)
		}
	}
	return b.String()
}
