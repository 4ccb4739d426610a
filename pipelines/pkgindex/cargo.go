package pkgindex

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Cargo is a cargo registry that mirrors crates.io (a company mirror such
// as Artifactory's, Nexus's or a panamax instance, or an air-gapped
// machine's own), given as its sparse index URL, and whether a token for
// it is given. Cargo then fetches every crates.io crate from it, with the
// checksums Cargo.lock pins: a mirror serves crates.io's own files.
type Cargo struct {
	// Registry is the sparse index URL, with or without cargo's "sparse+"
	// prefix. Git indexes are not taken: the builder image has no git.
	Registry  string
	WithToken bool
}

// CargoMirrorName is the name the mirror goes by in cargo's configuration:
// the token reaches cargo as CARGO_REGISTRIES_BOTCORE_MIRROR_TOKEN.
const CargoMirrorName = "botcore-mirror"

// Check returns one error naming the flag when the registry is not usable.
func (c Cargo) Check() error {
	if c.Registry == "" {
		if c.WithToken {
			return errors.New("--cargo-token was given without --cargo-registry: name the registry it is for")
		}
		return nil
	}
	raw := strings.TrimPrefix(c.Registry, "sparse+")
	if strings.HasPrefix(raw, "registry+") || strings.HasSuffix(raw, ".git") {
		return fmt.Errorf("--cargo-registry %s: give the registry's sparse index (sparse+https://...): git indexes are not supported", redact(raw))
	}
	if _, err := parse(raw, "--cargo-token"); err != nil {
		return fmt.Errorf("--cargo-registry %s: %w", redact(raw), err)
	}
	return nil
}

// Index is the registry as cargo's configuration names it: a sparse index
// URL ending in a slash.
func (c Cargo) Index() string {
	raw := strings.TrimPrefix(c.Registry, "sparse+")
	if !strings.HasSuffix(raw, "/") {
		raw += "/"
	}
	return "sparse+" + raw
}

// Config is the cargo configuration (above the project's directory) that replaces
// crates.io with the registry; "" without one. A project's own
// .cargo/config.toml takes precedence, as cargo reads it first: a project
// that vendors its crates keeps doing so.
func (c Cargo) Config() string {
	if c.Registry == "" {
		return ""
	}
	cfg := "# Written by build-all (--cargo-registry): crates.io's crates come from this registry.\n" +
		"[registries." + CargoMirrorName + "]\nindex = " + strconv.Quote(c.Index()) + "\n" +
		"[source.crates-io]\nreplace-with = " + strconv.Quote(CargoMirrorName) + "\n"
	if c.WithToken {
		// Cargo sends a token only through a credential provider it is told
		// to use; cargo:token reads CARGO_REGISTRIES_<NAME>_TOKEN.
		cfg += "[registry]\nglobal-credential-providers = [\"cargo:token\"]\n"
	}
	return cfg
}
