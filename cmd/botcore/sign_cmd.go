package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/bot-core/delivery/cmd/botcore/internal/signing"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// keyRefFlag is a --key value. Kong's usage errors quote the offending
// value, which for --key may be a private key pasted where its reference
// belongs; decoding it here keeps it out of every message.
type keyRefFlag string

func (k *keyRefFlag) Decode(ctx *kong.DecodeContext) error {
	tok := ctx.Scan.Pop()
	v, ok := tok.Value.(string)
	if !ok || tok.IsEOL() {
		return errors.New("expected a key reference: a file, env:VAR or a cosign key URI")
	}
	if err := signing.KeyRef(v).Validate(); err != nil {
		// kong puts the flag in front.
		return fmt.Errorf("%w: put the key in a file or an environment variable and pass its name", err)
	}
	*k = keyRefFlag(v)
	return nil
}

// signFlags are the signing options sign and attest share.
type signFlags struct {
	Key               keyRefFlag `name:"key" placeholder:"REF" help:"Sign with this private key instead of keylessly: a file, env:VAR (or env://VAR) holding the PEM, or a cosign key URI; an encrypted cosign.key is decrypted with COSIGN_PASSWORD."`
	IdentityToken     string     `name:"identity-token" placeholder:"JWT|FILE" help:"OIDC identity token for keyless signing, or a file holding one (default: env SIGSTORE_ID_TOKEN, then the GitHub Actions ID token when ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are set)."`
	FulcioURL         string     `name:"fulcio-url" placeholder:"URL" default:"${fulcio_url}" help:"Fulcio that certifies the ephemeral key of keyless signing (default: ${default})."`
	RekorURL          string     `name:"rekor-url" placeholder:"URL" default:"${rekor_url}" help:"Rekor transparency log the signatures are recorded in (default: ${default})."`
	TlogUpload        bool       `name:"tlog-upload" default:"true" negatable:"" help:"Record each signature in the transparency log (default); --tlog-upload=false opts out, and verifiers then need --insecure-ignore-tlog."`
	InsecureIgnoreSCT bool       `name:"insecure-ignore-sct" help:"Accept a Fulcio certificate without a certificate-transparency timestamp (only for a private Fulcio without a CT log)."`
}

func (f *signFlags) signer(a *app) (*signing.Signer, error) {
	s, err := signing.NewSigner(a.ctx, signing.SignerOptions{
		Key:             signing.KeyRef(f.Key),
		IDToken:         f.IdentityToken,
		FulcioURL:       f.FulcioURL,
		RekorURL:        f.RekorURL,
		TlogUpload:      f.TlogUpload,
		InsecureSkipSCT: f.InsecureIgnoreSCT,
		Env:             a.env,
		Progress:        a.progress,
	})
	return s, withHint(err)
}

// describe says how signatures are made, for the progress line.
func (f *signFlags) describe(s *signing.Signer) string {
	how := "with the key " + string(f.Key)
	if s.Mode() == signing.ModeKeyless {
		c := s.Certificate()
		how = fmt.Sprintf("keylessly as %s (issuer %s)", c.Identity, c.Issuer)
	}
	if f.TlogUpload {
		return how + ", recorded in the transparency log at " + f.RekorURL
	}
	return how + ", without the transparency log (--tlog-upload=false)"
}

type signCmd struct {
	Signing   signFlags `embed:""`
	Recursive bool      `help:"With an image index, also sign each platform manifest in it."`
	Images    []string  `arg:"" name:"image@digest" help:"Images to sign, by digest: REGISTRY/REPOSITORY@sha256:... or SERVICE@sha256:... under --registry. Tags are refused: sign digests, never tags."`
}

// target is one image to sign or attest, with its registry's options.
type target struct {
	digest name.Digest
	info   registry.Info
	opts   []remote.Option
}

func (c *signCmd) Run(g *Globals, a *app) error {
	targets, err := digestTargets(g, a, "sign", c.Images, c.Recursive)
	if err != nil {
		return err
	}
	signer, err := c.Signing.signer(a)
	if err != nil {
		return err
	}
	a.progress("signing %s %s", plural(len(targets), "manifest", "manifests"), c.Signing.describe(signer))
	var results []signing.Result
	for _, t := range targets {
		res, err := signer.SignImage(a.ctx, t.digest, t.opts...)
		if err != nil {
			return withHint(fmt.Errorf("cannot sign %s: %w", t.digest, registry.Explain(err, t.info)))
		}
		a.progress("signed %s (signature in %s)", t.digest, res.Signature)
		results = append(results, res)
	}
	if g.JSON {
		return a.printJSON(results)
	}
	return printSignResults(a, results, false)
}

func printSignResults(a *app, results []signing.Result, attestation bool) error {
	tw := a.table()
	col := "SIGNATURE"
	if attestation {
		col = "ATTESTATION"
	}
	fmt.Fprintf(tw, "IMAGE\t%s\tMODE\tSIGNER\tTLOG\n", col)
	for _, r := range results {
		where := r.Signature
		if attestation {
			where = r.Attestation
		}
		signer := r.Key
		if r.Mode == signing.ModeKeyless {
			signer = r.CertificateIdentity
		}
		tlog := "no"
		if r.Tlog {
			tlog = "yes"
			if r.TlogIndex != nil {
				tlog = fmt.Sprintf("yes (index %d)", *r.TlogIndex)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Reference, tagOf(where), r.Mode, signer, tlog)
	}
	return tw.Flush()
}

// tagOf shortens a signature reference to its tag.
func tagOf(ref string) string {
	if i := strings.LastIndex(ref, ":"); i >= 0 && !strings.Contains(ref[i:], "/") {
		return ref[i+1:]
	}
	return ref
}

// digestTargets parses image@digest arguments, refuses tags, checks that
// each digest exists and, with recursive, adds the platform manifests of
// an index.
func digestTargets(g *Globals, a *app, verb string, args []string, recursive bool) ([]target, error) {
	var targets []target
	for _, s := range args {
		ref, info, err := g.imageRef(s)
		if err != nil {
			return nil, err
		}
		d, ok := ref.(name.Digest)
		if !ok {
			return nil, fmt.Errorf("refusing to %s the tag %s: sign digests, never tags (a tag can move to another image after signing), e.g. %s@sha256:<digest> (`botcore inspect` shows it)", verb, s, ref.Context())
		}
		opts := a.remoteOptions(info)
		desc, err := remote.Get(d, opts...)
		if err != nil {
			return nil, registry.Explain(err, info)
		}
		targets = append(targets, target{d, info, opts})
		if !recursive || !desc.MediaType.IsIndex() {
			continue
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, registry.Explain(err, info)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		for _, m := range im.Manifests {
			targets = append(targets, target{d.Context().Digest(m.Digest.String()), info, opts})
		}
	}
	return targets, nil
}

// imageRef parses an image argument: SERVICE[:TAG|@DIGEST] under the
// --registry prefix, or a full reference (anything with a slash).
func (g *Globals) imageRef(s string) (name.Reference, registry.Info, error) {
	if !strings.Contains(s, "/") {
		info, err := g.info()
		if err != nil {
			return nil, registry.Info{}, err
		}
		ref, err := parseServiceRef(info, s)
		return ref, info, err
	}
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, registry.Info{}, fmt.Errorf("invalid image reference %q: give REGISTRY/REPOSITORY:TAG, REGISTRY/REPOSITORY@sha256:<64 hex digits>, or SERVICE:TAG under --registry", s)
	}
	info, err := registry.Detect(ref.Context().Name())
	if err != nil {
		// The keychain only needs the host; a repository Detect rejects
		// (e.g. an odd Docker Hub path) is still a valid reference.
		info = registry.Info{Kind: registry.KindGeneric, Registry: ref.Context().RegistryStr()}
	}
	if info.Insecure {
		if ref, err = name.ParseReference(s, name.Insecure); err != nil {
			return nil, registry.Info{}, err
		}
	}
	return ref, info, nil
}
