// Package imagelock reads and writes images.lock: every base and tool image
// a release is built with, each pinned by digest, in one file beside
// services.yaml. A tag can move the day after a release; the digest cannot,
// so the same commit builds from the same bases until the lockfile is
// refreshed, and a refresh is a reviewable diff (by hand or by Renovate).
package imagelock

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"gopkg.in/yaml.v3"
)

// File is the lockfile's name at the source root.
const File = "images.lock"

// The roles an image plays. Each builder starts from its language's builder
// image and copies into its runtime image; the Go image compiles the botcore
// tool and the health prober; the tools image unpacks image archives.
const (
	RustBuilder   = "rust-builder"
	RustRuntime   = "rust-runtime"
	PythonBuilder = "python-builder"
	PythonRuntime = "python-runtime"
	NodeBuilder   = "node-builder"
	NodeRuntime   = "node-runtime"
	Go            = "go"
	Tools         = "tools"
)

// Roles lists every role in the order the lockfile writes them.
var Roles = []string{RustBuilder, RustRuntime, PythonBuilder, PythonRuntime, NodeBuilder, NodeRuntime, Go, Tools}

// Defaults are the official images, by tag, a refresh pins when neither the
// lockfile nor a flag names another.
var Defaults = map[string]string{
	RustBuilder:   "rust:1-slim-trixie",
	RustRuntime:   "gcr.io/distroless/cc-debian13:nonroot",
	PythonBuilder: "python:3.13-trixie",
	PythonRuntime: "python:3.13-slim-trixie",
	NodeBuilder:   "node:20-trixie",
	NodeRuntime:   "node:20-trixie-slim",
	Go:            "golang:1.26-bookworm",
	Tools:         "debian:bookworm-slim",
}

// Lock maps each role to its image reference.
type Lock map[string]string

// Parse reads a lockfile. Entries may still be tags (a new role is added by
// writing its tag and refreshing); Pinned says whether a build may use it.
func Parse(data []byte) (Lock, error) {
	var l Lock
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&l); err != nil {
		if errors.Is(err, io.EOF) {
			return Lock{}, nil
		}
		return nil, fmt.Errorf("%s: %w (want lines like `%s: %s@sha256:<64 hex>`)", File, err, RustBuilder, Defaults[RustBuilder])
	}
	for role, ref := range l {
		if !slices.Contains(Roles, role) {
			return nil, fmt.Errorf("%s: unknown image %q; the images are %s", File, role, strings.Join(Roles, ", "))
		}
		if _, _, err := Split(ref); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", File, role, err)
		}
	}
	return l, nil
}

// Split separates a reference into the image as named (repository and tag)
// and its digest, empty when it has none.
func Split(ref string) (image, digest string, err error) {
	image, digest, pinned := strings.Cut(strings.TrimSpace(ref), "@")
	if image == "" {
		return "", "", fmt.Errorf("empty image reference")
	}
	if _, err := name.ParseReference(image); err != nil {
		return "", "", fmt.Errorf("%q is not an image reference: %w", ref, err)
	}
	if _, err := v1.NewHash(digest); pinned && (err != nil || strings.ToLower(digest) != digest) {
		return "", "", fmt.Errorf("%q: the digest must be sha256: and 64 lowercase hex digits", ref)
	}
	return image, digest, nil
}

// Pin is image (its digest, if any, dropped) pinned to digest. The tag
// stays: it says which line of releases the digest follows, and it is what
// a refresh and Renovate resolve again.
func Pin(image, digest string) string {
	image, _, _ = strings.Cut(image, "@")
	return image + "@" + digest
}

// Pinned checks that every role is present and pinned by digest, naming
// the first that is not.
func (l Lock) Pinned() error {
	for _, role := range Roles {
		ref, ok := l[role]
		if !ok {
			return fmt.Errorf("%s has no %s image; refresh it to add one: dagger call lock-images export --path %s", File, role, File)
		}
		if _, d, _ := Split(ref); d == "" {
			return fmt.Errorf("%s: %s %s is not pinned by digest; refresh it: dagger call lock-images export --path %s", File, role, ref, File)
		}
	}
	return nil
}

// Tag is the reference a refresh resolves for role: the lockfile's image
// without its digest, or the default.
func (l Lock) Tag(role string) string {
	if ref, ok := l[role]; ok {
		image, _, _ := strings.Cut(ref, "@")
		return image
	}
	return Defaults[role]
}

// Format writes the lockfile, roles in their fixed order, so a refresh
// that changes one digest is a one-line diff.
func (l Lock) Format() []byte {
	var b bytes.Buffer
	b.WriteString("# The base and tool images bot-core builds with, each pinned by digest.\n")
	b.WriteString("# Refresh: dagger call lock-images export --path images.lock\n")
	b.WriteString("# (Renovate updates the digests too: .github/renovate.json.)\n")
	for _, role := range Roles {
		if ref, ok := l[role]; ok {
			fmt.Fprintf(&b, "%s: %s\n", role, ref)
		}
	}
	return b.Bytes()
}
