package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bot-core/delivery/cmd/botcore/internal/signing"
	"github.com/bot-core/delivery/pipelines/provenance"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/bot-core/delivery/pipelines/tags"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// verifyFlags are the verification policy verify, pull and deploy share.
type verifyFlags struct {
	Key                         string `name:"key" placeholder:"REF" help:"Verify key signatures with this public key: a file (cosign.pub), env:VAR (or env://VAR) holding the PEM, or a cosign key URI."`
	CertificateIdentity         string `name:"certificate-identity" placeholder:"ID" help:"Keyless: the signer the certificate must name, e.g. an email or https://github.com/acme/bot-core/.github/workflows/release.yml@refs/tags/v1.2.3."`
	CertificateIdentityRegexp   string `name:"certificate-identity-regexp" placeholder:"RE" help:"Keyless: a regular expression the signer must match instead."`
	CertificateOIDCIssuer       string `name:"certificate-oidc-issuer" placeholder:"URL" help:"Keyless: the OIDC issuer that vouched for the signer, e.g. https://token.actions.githubusercontent.com."`
	CertificateOIDCIssuerRegexp string `name:"certificate-oidc-issuer-regexp" placeholder:"RE" help:"Keyless: a regular expression the issuer must match instead."`
	CARoots                     string `name:"ca-roots" placeholder:"FILE" envvar:"SIGSTORE_ROOT_FILE" help:"Keyless: PEM root certificate (and intermediates) of a private Fulcio (env: SIGSTORE_ROOT_FILE; default: the public-good Sigstore root from TUF); --trusted-root holds these too, so give one or the other."`
	TrustedRoot                 string `name:"trusted-root" placeholder:"FILE" help:"Verify against this Sigstore trusted root (trusted_root.json from botcore trust-root save: Fulcio CAs, Rekor and CT log keys) instead of the public-good one from TUF; nothing is fetched, so this works offline."`
	InsecureIgnoreTlog          bool   `name:"insecure-ignore-tlog" help:"Accept signatures without a transparency-log entry (signed with --tlog-upload=false); keyless ones then only verify while their 10-minute certificate is valid."`
	InsecureIgnoreSCT           bool   `name:"insecure-ignore-sct" help:"Keyless: accept certificates without a certificate-transparency timestamp (a private Fulcio without a CT log)."`
	RekorURL                    string `name:"rekor-url" placeholder:"URL" default:"${rekor_url}" help:"Rekor transparency log to check the signatures against (default: ${default})."`
}

func (f *verifyFlags) verifier(a *app) (*signing.Verifier, error) {
	v, err := signing.NewVerifier(a.ctx, signing.VerifyOptions{
		Key:                         signing.KeyRef(f.Key),
		CertificateIdentity:         f.CertificateIdentity,
		CertificateIdentityRegexp:   f.CertificateIdentityRegexp,
		CertificateOIDCIssuer:       f.CertificateOIDCIssuer,
		CertificateOIDCIssuerRegexp: f.CertificateOIDCIssuerRegexp,
		CARoots:                     f.CARoots,
		TrustedRoot:                 f.TrustedRoot,
		IgnoreTlog:                  f.InsecureIgnoreTlog,
		IgnoreSCT:                   f.InsecureIgnoreSCT,
		RekorURL:                    f.RekorURL,
		Env:                         a.env,
	})
	return v, policyHint(err)
}

// policyHint is withHint with the advice that depends on --trusted-root,
// which only the commands that verify know of.
func policyHint(err error) error {
	var tre *signing.TrustedRootError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, signing.ErrTrustRoot):
		return &hinted{err, "check the network, or pass --trusted-root with a trusted root saved by `botcore trust-root save` on a connected host (or --ca-roots with your Fulcio's root)"}
	case errors.Is(err, signing.ErrTrustedRootAndCARoots):
		return &hinted{err, "drop --ca-roots (or unset SIGSTORE_ROOT_FILE): the trusted root holds the Fulcio CAs"}
	case errors.Is(err, signing.ErrTrustedRootNoCA):
		return &hinted{err, "save one with --fulcio-roots (botcore trust-root save), or verify with --key"}
	case errors.Is(err, signing.ErrTrustedRootNoRekor):
		return &hinted{err, "save one with --rekor-public-key (botcore trust-root save), or pass --insecure-ignore-tlog for images signed with --tlog-upload=false"}
	case errors.Is(err, signing.ErrTrustedRootNoCTLog):
		return &hinted{err, "save one with --ctlog-public-key (botcore trust-root save), or pass --insecure-ignore-sct for a Fulcio without a CT log"}
	case errors.As(err, &tre):
		return &hinted{err, "save one with `botcore trust-root save FILE`"}
	}
	return withHint(err)
}

// given reports whether any policy flag was set (the defaults aside). A
// trusted root counts: it only matters to a verification, so giving it
// with --insecure-skip-verify is a contradiction too.
func (f *verifyFlags) given() bool {
	return f.Key != "" || f.CertificateIdentity != "" || f.CertificateIdentityRegexp != "" ||
		f.CertificateOIDCIssuer != "" || f.CertificateOIDCIssuerRegexp != "" || f.TrustedRoot != ""
}

type verifyCmd struct {
	Policy          verifyFlags `embed:""`
	AttestationType string      `name:"attestation-type" placeholder:"TYPE" help:"Also require a valid attestation of this predicate type (spdxjson, cyclonedx, slsaprovenance, ... or a URI) signed by the same signer."`
	Require         []string    `name:"require" sep:"," placeholder:"LIST" help:"Also require, on every platform manifest (each platform image of an index), a valid attestation of each of these kinds signed by the same signer: sbom, provenance (SLSA v1), vuln (the vulnerability scan), or a cosign predicate type. With a release asked (a version tag or --release), the provenance must record that release: its version input and, for a tag push, its git ref refs/tags/vX.Y.Z."`
	Recursive       bool        `help:"With an image index, also verify each platform manifest's own signature (made by sign --recursive)."`
	Release         string      `name:"release" placeholder:"V" help:"Also require the image to be release V (its org.opencontainers.image.version label); default: the tag, when the reference is a version tag such as rust-core-engine:v1.2.3."`
	Image           string      `arg:"" name:"ref" help:"Image to verify: SERVICE:TAG (or SERVICE@sha256:...) under --registry, or a full reference. A tag is resolved to its digest first; the digest is what is verified."`
}

// verifyReport is what verify prints with --json.
type verifyReport struct {
	Reference string             `json:"reference"` // as given, resolved under --registry
	Digest    string             `json:"digest"`
	Verified  []signing.Verified `json:"verified"`
	// Release is the release the image was checked to be, if any.
	Release string `json:"release,omitempty"`
}

func (c *verifyCmd) Validate() error {
	if c.Release != "" {
		if err := tags.ValidateVersion(c.Release); err != nil {
			return fmt.Errorf("--release: %w", err)
		}
	}
	for i, kind := range c.Require {
		t, err := requiredType(kind)
		if err != nil {
			return err
		}
		c.Require[i] = t
	}
	return nil
}

// requiredKinds are --require's names for the attestations build-all makes,
// as cosign types them; any other cosign predicate type is taken as is.
var requiredKinds = map[string]string{"sbom": "spdxjson", "provenance": provenance.CosignType, "vuln": "vuln"}

func requiredType(kind string) (string, error) {
	if t, ok := requiredKinds[kind]; ok {
		return t, nil
	}
	if _, err := signing.PredicateTypeURI(kind); err != nil {
		return "", fmt.Errorf("--require: %q is no attestation kind: give sbom, provenance, vuln or a cosign predicate type such as spdxjson", kind)
	}
	return kind, nil
}

func (c *verifyCmd) Run(g *Globals, a *app) error {
	ref, info, err := g.imageRef(c.Image)
	if err != nil {
		return err
	}
	if c.AttestationType != "" {
		if _, err := signing.PredicateTypeURI(c.AttestationType); err != nil {
			return err
		}
	}
	v, err := c.Policy.verifier(a)
	if err != nil {
		return err
	}
	opts := a.remoteOptions(info)
	a.progress("resolving %s", ref)
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return registry.Explain(err, info)
	}
	d := ref.Context().Digest(desc.Digest.String())
	if _, isTag := ref.(name.Tag); isTag {
		a.progress("%s is %s", ref, d.DigestStr())
	}
	report := verifyReport{Reference: ref.String(), Digest: d.DigestStr()}

	check := func(d name.Digest, attestation string) error {
		var res signing.Verified
		var err error
		if attestation == "" {
			res, err = v.VerifyImage(a.ctx, d, opts...)
		} else {
			res, err = v.VerifyAttestation(a.ctx, d, attestation, opts...)
		}
		if err != nil {
			return verifyError(err, info)
		}
		a.progress("verified the %s of %s: %s", res.Kind, d.DigestStr(), describeVerified(res))
		report.Verified = append(report.Verified, res)
		return nil
	}
	if err := check(d, ""); err != nil {
		return err
	}
	if c.AttestationType != "" {
		if err := check(d, c.AttestationType); err != nil {
			return err
		}
	}
	if want := c.releaseWanted(ref); want != "" {
		err := registry.CheckRelease(d, desc, want)
		var vm *registry.VersionMismatchError
		switch {
		case errors.As(err, &vm) && vm.Got == "" && c.Release == "":
			// Not an image of this pipeline (which labels every image):
			// only an explicit --release makes the label required.
			a.progress("note: %s has no version label, so which release it is was not checked (--release requires one)", d.DigestStr())
		case err != nil:
			return verifyError(err, info)
		default:
			a.progress("%s is release %s", d.DigestStr(), want)
			report.Release = want
		}
	}
	if len(c.Require) > 0 {
		if err := c.requireAttestations(d, desc, c.releaseWanted(ref), check, &report, a); err != nil {
			return err
		}
	}
	if c.Recursive && desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return registry.Explain(err, info)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		for _, m := range im.Manifests {
			if err := check(d.Context().Digest(m.Digest.String()), ""); err != nil {
				return err
			}
		}
	}

	if g.JSON {
		return a.printJSON(report)
	}
	fmt.Fprintf(a.stdout, "verified %s\n", ref)
	fmt.Fprintf(a.stdout, "  digest  %s\n", d.DigestStr())
	if report.Release != "" {
		fmt.Fprintf(a.stdout, "  release  %s (version label)\n", report.Release)
	}
	for _, r := range report.Verified {
		what := r.Kind
		if r.PredicateType != "" {
			what += " " + r.PredicateType
		}
		if r.Digest != d.DigestStr() {
			what += " of " + r.Digest
		}
		fmt.Fprintf(a.stdout, "  %s  %s\n", what, describeVerified(r))
	}
	return nil
}

// requireAttestations checks every --require attestation on each platform
// manifest of d (build-all attests those, not the index) and, with a
// release wanted, that every provenance records the build of that release:
// a signed provenance of v1.1.0 is no evidence for v1.2.0. Its errors are
// explained already.
func (c *verifyCmd) requireAttestations(d name.Digest, desc *remote.Descriptor, want string, check func(name.Digest, string) error, report *verifyReport, a *app) error {
	targets := []name.Digest{d}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return fmt.Errorf("cannot parse the index of %s: %w", d, err)
		}
		targets = nil
		for _, m := range im.Manifests {
			if !registry.IsPlatformImage(m) {
				continue
			}
			targets = append(targets, d.Context().Digest(m.Digest.String()))
		}
	}
	for _, t := range targets {
		for _, kind := range c.Require {
			if err := check(t, kind); err != nil {
				return err
			}
			if kind != provenance.CosignType || want == "" {
				continue
			}
			for _, st := range report.Verified[len(report.Verified)-1].Statements {
				p, err := provenance.Parse(st)
				if err != nil {
					return fmt.Errorf("the provenance of %s cannot be read: %w", t, err)
				}
				if err := provenance.CheckVersion(p, t.String(), want); err != nil {
					return verifyError(err, registry.Info{})
				}
			}
			a.progress("the provenance of %s records release %s", t.DigestStr(), want)
		}
	}
	return nil
}

// releaseWanted is the release the image must be: --release, else the tag
// when it is a version (a tag like latest or main names no release).
func (c *verifyCmd) releaseWanted(ref name.Reference) string {
	if c.Release != "" {
		return c.Release
	}
	if t, ok := ref.(name.Tag); ok && tags.IsVersion(t.TagStr()) {
		return t.TagStr()
	}
	return ""
}

func describeVerified(r signing.Verified) string {
	by := make([]string, len(r.SignedBy))
	for i, s := range r.SignedBy {
		by[i] = s.String()
	}
	tlog := "transparency log checked"
	if !r.Tlog {
		tlog = "transparency log not checked"
	}
	return fmt.Sprintf("%s by %s, %s", plural(r.Count, "signature", "signatures"), strings.Join(by, ", "), tlog)
}

// verifyError adds what to do to signing's verification sentences and
// explains registry errors the usual way.
func verifyError(err error, info registry.Info) error {
	var verr *signing.VerificationError
	var vm *registry.VersionMismatchError
	var pm *provenance.VersionMismatchError
	switch {
	case errors.As(err, &verr):
		return withHint(err)
	case errors.As(err, &vm):
		return &hinted{err, "use the digest release.json records for " + vm.Want + ", or ask whoever moved the tag"}
	case errors.As(err, &pm):
		return &hinted{err, "use the digest release.json records for " + pm.Want + ", or ask whoever published it"}
	}
	return registry.Explain(err, info)
}
