package signing

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/bot-core/delivery/pipelines/signpolicy"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// VerifyOptions configure NewVerifier: either Key, or the expected
// certificate identity and issuer (keyless).
type VerifyOptions struct {
	Key KeyRef

	CertificateIdentity         string
	CertificateIdentityRegexp   string
	CertificateOIDCIssuer       string
	CertificateOIDCIssuerRegexp string
	// CARoots is a PEM file with the Fulcio root certificate (and any
	// intermediates) of a private Fulcio; empty means the public-good
	// Sigstore trust root from TUF.
	CARoots string
	// TrustedRoot is a trusted_root.json (see LoadTrustedRoot) holding the
	// Fulcio CAs, Rekor and CT log keys to verify against instead of the
	// public-good ones from TUF: nothing is fetched, so it works offline.
	TrustedRoot string

	// IgnoreTlog accepts signatures without a transparency-log entry (signed
	// without uploading to Rekor). Fulcio certificates live 10 minutes, so
	// such keyless signatures only verify while their certificate is valid.
	IgnoreTlog bool
	// IgnoreSCT accepts Fulcio certificates without a certificate-
	// transparency timestamp (a Fulcio without a CT log).
	IgnoreSCT bool
	RekorURL  string

	Env func(string) string
	// Registry are the default options of the registry calls (auth,
	// context); a call may pass its own instead.
	Registry []remote.Option
}

// Keyless reports whether o verifies certificates rather than a key.
func (o VerifyOptions) Keyless() bool { return o.Key == "" }

// Verifier checks signatures and attestations against one policy.
type Verifier struct {
	opts VerifyOptions
	co   *cosign.CheckOpts
}

// SignedBy is who made a verified signature.
type SignedBy struct {
	Identity string `json:"certificate_identity,omitempty"`
	Issuer   string `json:"certificate_oidc_issuer,omitempty"`
	Key      string `json:"key,omitempty"`
}

func (s SignedBy) String() string {
	if s.Key != "" {
		return "key " + s.Key
	}
	return s.Identity + " (issuer " + s.Issuer + ")"
}

// Verified is the outcome of a successful verification.
type Verified struct {
	Reference     string     `json:"reference"` // repository@digest
	Digest        string     `json:"digest"`
	Mode          Mode       `json:"mode"`
	Kind          string     `json:"kind"` // "signature" or "attestation"
	PredicateType string     `json:"predicate_type,omitempty"`
	Count         int        `json:"count"`
	SignedBy      []SignedBy `json:"signed_by"`
	// Tlog says the transparency-log entry of a signature was verified.
	Tlog bool `json:"tlog"`
	// Statements are the in-toto statements of the verified attestations,
	// for a caller that checks what they say.
	Statements [][]byte `json:"-"`
}

// NewVerifier loads the key or the trust roots the options name.
func NewVerifier(ctx context.Context, o VerifyOptions) (*Verifier, error) {
	if o.Env == nil {
		o.Env = func(string) string { return "" }
	}
	if o.RekorURL == "" {
		o.RekorURL = signpolicy.DefaultRekorURL
	}
	co := &cosign.CheckOpts{
		ClaimVerifier: cosign.SimpleClaimVerifier,
		IgnoreTlog:    o.IgnoreTlog,
		IgnoreSCT:     o.IgnoreSCT,
	}
	hasIdentity := o.CertificateIdentity != "" || o.CertificateIdentityRegexp != ""
	hasIssuer := o.CertificateOIDCIssuer != "" || o.CertificateOIDCIssuerRegexp != ""
	switch {
	case o.Key != "":
		// CARoots is not an error here: SIGSTORE_ROOT_FILE may well be set
		// in an environment that also verifies key signatures.
		if hasIdentity || hasIssuer {
			return nil, ErrKeyAndIdentity
		}
		if err := o.Key.Validate(); err != nil {
			return nil, err
		}
		v, err := LoadVerifier(ctx, o.Key, o.Env)
		if err != nil {
			return nil, err
		}
		co.SigVerifier = v
		if o.TrustedRoot != "" {
			// Only the Rekor keys matter for a key signature.
			tr, err := trustedRootFor(o, false)
			if err != nil {
				return nil, err
			}
			co.TrustedMaterial = tr
		}
	case !hasIdentity && !hasIssuer:
		return nil, ErrNoVerifyPolicy
	case !hasIdentity:
		return nil, ErrNoIdentity
	case !hasIssuer:
		return nil, ErrNoIssuer
	default:
		for _, p := range []struct {
			re  string
			err error
		}{{o.CertificateIdentityRegexp, ErrIdentityRegexp}, {o.CertificateOIDCIssuerRegexp, ErrIssuerRegexp}} {
			if _, err := regexp.Compile(p.re); err != nil {
				return nil, fmt.Errorf("%w: %q: %v", p.err, p.re, err)
			}
		}
		co.Identities = []cosign.Identity{{
			Issuer:        o.CertificateOIDCIssuer,
			IssuerRegExp:  o.CertificateOIDCIssuerRegexp,
			Subject:       o.CertificateIdentity,
			SubjectRegExp: o.CertificateIdentityRegexp,
		}}
		if o.TrustedRoot != "" {
			if o.CARoots != "" {
				return nil, ErrTrustedRootAndCARoots
			}
			tr, err := trustedRootFor(o, true)
			if err != nil {
				return nil, err
			}
			co.TrustedMaterial = tr
		} else if o.CARoots != "" {
			roots, intermediates, err := loadCARoots(o.CARoots)
			if err != nil {
				return nil, err
			}
			co.RootCerts, co.IntermediateCerts = roots, intermediates
		} else {
			tm, err := cosign.TrustedRoot()
			if err != nil {
				return nil, fmt.Errorf("%w (%v)", ErrTrustRoot, err)
			}
			co.TrustedMaterial = tm
		}
		if !o.IgnoreSCT && co.TrustedMaterial == nil {
			pubs, err := cosign.GetCTLogPubs(ctx)
			if err != nil {
				return nil, fmt.Errorf("%w (%v)", ErrCTLogKeys, err)
			}
			co.CTLogPubKeys = pubs
		}
	}
	if !o.IgnoreTlog {
		rc, err := newRekorClient(o.RekorURL)
		if err != nil {
			return nil, err
		}
		co.RekorClient = rc
		if co.TrustedMaterial == nil {
			pubs, err := cosign.GetRekorPubs(ctx)
			if err != nil {
				return nil, fmt.Errorf("%w (%v)", ErrRekorKeys, err)
			}
			co.RekorPubKeys = pubs
		}
	}
	return &Verifier{opts: o, co: co}, nil
}

// trustedRootFor loads o.TrustedRoot and checks it holds what the policy
// needs, so a missing key is named up front rather than as a failure of
// every signature.
func trustedRootFor(o VerifyOptions, keyless bool) (root.TrustedMaterial, error) {
	tr, err := LoadTrustedRoot(o.TrustedRoot)
	if err != nil {
		return nil, err
	}
	missing := func(err error) error {
		return &TrustedRootError{Path: o.TrustedRoot, Msg: err.Error(), Err: err}
	}
	switch {
	case keyless && len(tr.FulcioCertificateAuthorities()) == 0:
		return nil, missing(ErrTrustedRootNoCA)
	case !o.IgnoreTlog && len(tr.RekorLogs()) == 0:
		return nil, missing(ErrTrustedRootNoRekor)
	case keyless && !o.IgnoreSCT && len(tr.CTLogs()) == 0:
		return nil, missing(ErrTrustedRootNoCTLog)
	}
	return tr, nil
}

// loadCARoots splits a PEM bundle into self-signed roots and intermediates.
func loadCARoots(path string) (roots, intermediates *x509.CertPool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read the CA roots file %s: %v", path, errors.Unwrap(err))
	}
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM(b)
	if err != nil || len(certs) == 0 {
		return nil, nil, fmt.Errorf("the CA roots file %s holds no PEM certificate: give the root certificate of your Fulcio (GET /api/v1/rootCert)", path)
	}
	roots, intermediates = x509.NewCertPool(), x509.NewCertPool()
	nroots := 0
	for _, c := range certs {
		if c.CheckSignatureFrom(c) == nil {
			roots.AddCert(c)
			nroots++
		} else {
			intermediates.AddCert(c)
		}
	}
	if nroots == 0 {
		return nil, nil, fmt.Errorf("the CA roots file %s holds no self-signed root certificate: add your Fulcio's root", path)
	}
	return roots, intermediates, nil
}

func (v *Verifier) mode() Mode {
	if v.opts.Keyless() {
		return ModeKeyless
	}
	return ModeKey
}

func (v *Verifier) signers(sigs []oci.Signature) []SignedBy {
	var out []SignedBy
	for _, s := range sigs {
		by := SignedBy{}
		if cert, err := s.Cert(); err == nil && cert != nil && v.opts.Keyless() {
			by.Identity, by.Issuer = CertIdentity(cert)
		} else {
			by.Key = string(v.opts.Key)
		}
		if !slices.Contains(out, by) {
			out = append(out, by)
		}
	}
	return out
}

// VerifyImage checks the cosign signatures of d (a digest, never a tag, so
// what is verified is what will be used). reg, when given, replaces
// VerifyOptions.Registry for this call.
func (v *Verifier) VerifyImage(ctx context.Context, d name.Digest, reg ...remote.Option) (Verified, error) {
	reg = v.registry(reg)
	co := v.checkOpts(reg)
	sigs, tlog, err := cosign.VerifyImageSignatures(ctx, d, co)
	if err != nil {
		return Verified{}, v.explain(err, d, "signature", "", reg)
	}
	return Verified{Reference: d.String(), Digest: d.DigestStr(), Mode: v.mode(), Kind: "signature",
		Count: len(sigs), SignedBy: v.signers(sigs), Tlog: tlog || (!v.opts.IgnoreTlog && len(sigs) > 0)}, nil
}

// VerifyAttestation checks that d has a valid attestation of predicateType
// (short form such as spdxjson, or a URI) signed per the policy.
func (v *Verifier) VerifyAttestation(ctx context.Context, d name.Digest, predicateType string, reg ...remote.Option) (Verified, error) {
	reg = v.registry(reg)
	uri, err := PredicateTypeURI(predicateType)
	if err != nil {
		return Verified{}, err
	}
	co := v.checkOpts(reg)
	co.ClaimVerifier = cosign.IntotoSubjectClaimVerifier
	atts, tlog, err := cosign.VerifyImageAttestations(ctx, d, co)
	if err != nil {
		return Verified{}, v.explain(err, d, "attestation", predicateType, reg)
	}
	var matching []oci.Signature
	var statements [][]byte
	var found []string
	for _, a := range atts {
		st, t := statement(a)
		if t == uri {
			matching = append(matching, a)
			statements = append(statements, st)
		} else if t != "" && !slices.Contains(found, t) {
			found = append(found, t)
		}
	}
	if len(matching) == 0 {
		return Verified{}, &VerificationError{Reason: ReasonOtherType, Digest: d, Kind: "attestation", PredicateType: predicateType,
			Msg: fmt.Sprintf("%s has valid attestations, but none of type %s (%s; found %s)", d, predicateType, uri, strings.Join(found, ", "))}
	}
	return Verified{Reference: d.String(), Digest: d.DigestStr(), Mode: v.mode(), Kind: "attestation", PredicateType: uri,
		Count: len(matching), SignedBy: v.signers(matching), Tlog: tlog || !v.opts.IgnoreTlog, Statements: statements}, nil
}

func (v *Verifier) registry(reg []remote.Option) []remote.Option {
	if len(reg) == 0 {
		return v.opts.Registry
	}
	return reg
}

func (v *Verifier) checkOpts(reg []remote.Option) *cosign.CheckOpts {
	co := *v.co
	co.RegistryClientOpts = []ociremote.Option{ociremote.WithRemoteOptions(reg...)}
	return &co
}

// statement is the in-toto statement in an attestation's DSSE envelope,
// and its predicateType.
func statement(att oci.Signature) ([]byte, string) {
	payload, err := att.Payload()
	if err != nil {
		return nil, ""
	}
	var env struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(payload, &env) != nil {
		return nil, ""
	}
	raw, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, ""
	}
	var st struct {
		PredicateType string `json:"predicateType"`
	}
	if json.Unmarshal(raw, &st) != nil {
		return nil, ""
	}
	return raw, st.PredicateType
}

// explain rewrites cosign's errors, which list every signature's failure,
// as the one reason that matters.
func (v *Verifier) explain(err error, d name.Digest, kind, predicateType string, reg []remote.Option) error {
	fail := func(reason Reason, format string, args ...any) error {
		return &VerificationError{Reason: reason, Digest: d, Kind: kind, PredicateType: predicateType, Msg: fmt.Sprintf(format, args...), Err: err}
	}
	msg := err.Error()
	var noSigs *cosign.ErrNoSignaturesFound
	var noMatch *cosign.ErrNoMatchingSignatures
	var noAtts *cosign.ErrNoMatchingAttestations
	switch {
	case errors.As(err, &noSigs) || (errors.As(err, &noAtts) && strings.TrimSpace(msg) == "no matching attestations:"):
		if kind == "attestation" {
			return fail(ReasonUnsigned, "%s has no attestation", d)
		}
		return fail(ReasonUnsigned, "%s is not signed: no cosign signature is stored for this digest (a tag moved to a new image needs a new signature)", d)
	case !errors.As(err, &noMatch) && !errors.As(err, &noAtts):
		return err // registry and transport errors: the caller explains those
	}
	switch {
	case strings.Contains(msg, "none of the expected identities matched"):
		want := v.opts.CertificateIdentity
		if want == "" {
			want = "~" + v.opts.CertificateIdentityRegexp
		}
		issuer := v.opts.CertificateOIDCIssuer
		if issuer == "" {
			issuer = "~" + v.opts.CertificateOIDCIssuerRegexp
		}
		return fail(ReasonSigner, "no %s of %s was made by %s (issuer %s)%s", kind, d, want, issuer, foundSigners(d, kind, reg))
	case v.opts.TrustedRoot != "" && v.opts.Keyless() && (strings.Contains(msg, "leaf certificate verification failed") || strings.Contains(msg, "certificate signed by unknown authority")):
		return fail(ReasonNotInTrustedRoot, "the %s certificates of %s were not issued by a Fulcio CA of the trusted root %s", kind, d, v.opts.TrustedRoot)
	case strings.Contains(msg, "certificate signed by unknown authority") || strings.Contains(msg, "cert verification failed"):
		return fail(ReasonUntrustedCA, "the %s certificates of %s were not issued by a trusted Fulcio", kind, d)
	case strings.Contains(msg, "expected a signed timestamp to verify an expired certificate") || strings.Contains(msg, "certificate has expired") || strings.Contains(msg, "expired"):
		return fail(ReasonExpired, "the Fulcio certificate of the %s of %s has expired and no transparency-log entry proves it was used in time", kind, d)
	case strings.Contains(msg, "SCT"):
		return fail(ReasonNoSCT, "the %s certificate of %s has no valid certificate-transparency timestamp", kind, d)
	case strings.Contains(msg, "tlog") || strings.Contains(msg, "rekor") || strings.Contains(msg, "Rekor") || strings.Contains(msg, "transparency log") || strings.Contains(msg, "bundle"):
		return fail(ReasonNoTlog, "the %s of %s has no verifiable transparency-log entry", kind, d)
	case !v.opts.Keyless() && (strings.Contains(msg, "invalid signature") || strings.Contains(msg, "failed to verify signature") || strings.Contains(msg, "verification error") || strings.Contains(msg, "signature")):
		return fail(ReasonWrongKey, "no %s of %s verifies with the key %s: it was signed with another key (or keylessly)", kind, d, string(v.opts.Key))
	case v.opts.Keyless() && strings.Contains(msg, "no certificate found on signature"):
		return fail(ReasonNotKeyless, "the %ss of %s were made with a key, not keylessly", kind, d)
	}
	return fail(ReasonOther, "no valid %s of %s: %s", kind, d, firstLine(msg))
}

// foundSigners names who did sign d, unverified, to make an identity
// mismatch obvious.
func foundSigners(d name.Digest, kind string, reg []remote.Option) string {
	opts := []ociremote.Option{ociremote.WithRemoteOptions(reg...)}
	tag, err := ociremote.SignatureTag(d, opts...)
	if kind == "attestation" {
		tag, err = ociremote.AttestationTag(d, opts...)
	}
	if err != nil {
		return ""
	}
	sigs, err := ociremote.Signatures(tag, opts...)
	if err != nil {
		return ""
	}
	list, err := sigs.Get()
	if err != nil {
		return ""
	}
	var who []string
	for _, s := range list {
		if cert, err := s.Cert(); err == nil && cert != nil {
			id, iss := CertIdentity(cert)
			if w := id + " (issuer " + iss + ")"; !slices.Contains(who, w) {
				who = append(who, w)
			}
		}
	}
	if len(who) == 0 {
		return ""
	}
	return "; it was signed by " + strings.Join(who, ", ")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
