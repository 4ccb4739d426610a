package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/bot-core/delivery/cmd/botcore/internal/signing"
	"github.com/sigstore/sigstore-go/pkg/root"
)

type trustRootCmd struct {
	Save trustRootSaveCmd `cmd:"" help:"Save the Sigstore trusted root (trusted_root.json) to FILE: fetched from TUF (the public-good Sigstore, or --tuf-mirror), or built from a private Sigstore's pieces (--fulcio-roots, --rekor-public-key, --ctlog-public-key). Verify offline with --trusted-root FILE."`
}

type trustRootSaveCmd struct {
	File string `arg:"" name:"file" placeholder:"FILE" help:"Where to write trusted_root.json (replaced whole, never half-written)."`

	TUFMirror string `name:"tuf-mirror" placeholder:"URL" group:"From TUF" help:"TUF repository to fetch trusted_root.json from (default: the public-good https://tuf-repo-cdn.sigstore.dev)."`
	TUFRoot   string `name:"tuf-root" placeholder:"FILE" group:"From TUF" help:"The initial root.json of --tuf-mirror, which its metadata must chain to (required for any repository other than the public-good one)."`

	FulcioRoots    []string `name:"fulcio-roots" placeholder:"FILE" group:"From pieces" help:"PEM file with a private Fulcio's root certificate and its intermediates (GET /api/v1/rootCert); repeatable, one CA per file."`
	FulcioURL      string   `name:"fulcio-url" placeholder:"URL" group:"From pieces" help:"The URL of that Fulcio, recorded in the trusted root (optional)."`
	RekorPublicKey []string `name:"rekor-public-key" placeholder:"FILE" group:"From pieces" help:"PEM public key of a Rekor transparency log (GET /api/v1/log/publicKey); repeatable."`
	RekorURL       string   `name:"rekor-url" placeholder:"URL" group:"From pieces" help:"The URL of that Rekor, recorded in the trusted root (optional)."`
	CTLogPublicKey []string `name:"ctlog-public-key" placeholder:"FILE" group:"From pieces" help:"PEM public key of the certificate-transparency log that timestamps Fulcio's certificates; repeatable."`
}

// trustRootReport is what trust-root save prints with --json.
type trustRootReport struct {
	Path   string `json:"path"`
	Source string `json:"source"` // the TUF repository, or "pieces"
	signing.TrustedRootSummary
}

func (c *trustRootSaveCmd) parts() signing.TrustRootParts {
	return signing.TrustRootParts{
		FulcioChains: c.FulcioRoots, FulcioURL: c.FulcioURL,
		RekorKeys: c.RekorPublicKey, RekorURL: c.RekorURL,
		CTLogKeys: c.CTLogPublicKey,
	}
}

func (c *trustRootSaveCmd) Validate() error {
	p := c.parts()
	switch {
	case !p.Empty() && (c.TUFMirror != "" || c.TUFRoot != ""):
		return errors.New("--tuf-mirror and --tuf-root fetch the trusted root, --fulcio-roots, --rekor-public-key and --ctlog-public-key build it: give one kind or the other")
	case c.TUFMirror != "" && c.TUFRoot == "" && strings.TrimRight(c.TUFMirror, "/") != signing.PublicGoodTUF:
		return errors.New("--tuf-mirror needs --tuf-root, the root.json that mirror was initialised with: the built-in root only vouches for the public-good Sigstore")
	case c.FulcioURL != "" && len(c.FulcioRoots) == 0:
		return errors.New("--fulcio-url names the Fulcio of --fulcio-roots: add --fulcio-roots")
	case c.RekorURL != "" && len(c.RekorPublicKey) == 0:
		return errors.New("--rekor-url names the Rekor of --rekor-public-key: add --rekor-public-key")
	case !p.Empty() && len(c.FulcioRoots) == 0 && len(c.RekorPublicKey) == 0:
		return errors.New("a trusted root needs --fulcio-roots (keyless signatures) or --rekor-public-key (transparency-log entries), not only CT log keys")
	}
	return nil
}

func (c *trustRootSaveCmd) Run(g *Globals, a *app) error {
	var b []byte
	var err error
	source := "pieces"
	if p := c.parts(); !p.Empty() {
		a.progress("building the trusted root from %s", plural(len(p.FulcioChains)+len(p.RekorKeys)+len(p.CTLogKeys), "file", "files"))
		if b, err = signing.BuildTrustedRoot(p); err != nil {
			return err
		}
	} else {
		src := signing.TUFSource{Mirror: c.TUFMirror}
		if c.TUFRoot != "" {
			if src.RootJSON, err = os.ReadFile(c.TUFRoot); err != nil {
				return fmt.Errorf("cannot read the TUF root %s: %v", c.TUFRoot, errors.Unwrap(err))
			}
		}
		source = c.TUFMirror
		if source == "" {
			source = signing.PublicGoodTUF
		}
		a.progress("fetching trusted_root.json from the TUF repository %s", source)
		if b, err = signing.FetchTrustedRoot(a.ctx, src); err != nil {
			return trustRootHint(err, c.TUFMirror)
		}
	}
	// Read back what will be written: a file verify cannot load is never
	// saved.
	tr, err := root.NewTrustedRootFromJSON(b)
	if err != nil {
		return fmt.Errorf("the trusted root does not load back: %w", err)
	}
	if err := writeFileAtomic(c.File, b); err != nil {
		return err
	}
	rep := trustRootReport{Path: c.File, Source: source, TrustedRootSummary: signing.Summarize(tr)}
	if g.JSON {
		return a.printJSON(rep)
	}
	fmt.Fprintf(a.stdout, "saved the Sigstore trusted root to %s: %s, %s, %s, %s\n", c.File,
		plural(rep.FulcioCAs, "Fulcio CA", "Fulcio CAs"), plural(rep.RekorLogs, "Rekor key", "Rekor keys"),
		plural(rep.CTLogs, "CT log key", "CT log keys"), plural(rep.Timestamper, "timestamp authority", "timestamp authorities"))
	fmt.Fprintf(a.stdout, "verify with: botcore verify --trusted-root %s ...\n", c.File)
	return nil
}

func trustRootHint(err error, mirror string) error {
	switch {
	case errors.Is(err, signing.ErrTUFRootInvalid):
		return &hinted{err, "give --tuf-root the root.json the mirror was initialised with"}
	case errors.Is(err, signing.ErrTUFRootNeeded):
		return &hinted{err, "pass --tuf-root with the root.json the mirror was initialised with"}
	case errors.Is(err, signing.ErrTUFFetch) && mirror == "":
		return &hinted{err, "run `botcore trust-root save` on a host that reaches it and copy the file, or build the root of a private Sigstore with --fulcio-roots, --rekor-public-key and --ctlog-public-key"}
	case errors.Is(err, signing.ErrTUFFetch):
		return &hinted{err, "check --tuf-mirror, --tuf-root and the network"}
	}
	return err
}

// writeFileAtomic replaces path with b, leaving the old file (or none)
// behind on a failure.
func writeFileAtomic(path string, b []byte) error {
	err := replaceFile(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the temporary file's name says nothing to the user
	}
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}
