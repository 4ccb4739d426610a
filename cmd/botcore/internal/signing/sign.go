// Package signing signs and verifies images with cosign's libraries, the way
// `cosign sign`, `cosign attest` and `cosign verify` do, so the real cosign
// CLI verifies what botcore signs and the other way round. It differs from
// calling the cosign commands in what matters for an operator CLI: it takes
// a context, reports progress through a callback instead of printing on the
// process's stdout/stderr, reads secrets through an env function, never
// echoes tokens, passwords or keys, and uses
// http.DefaultTransport / go-containerregistry's DefaultTransport for every
// connection (so botcore's --connect-to applies).
package signing

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/bot-core/delivery/pipelines/signpolicy"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/cosign/attestation"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	cremote "github.com/sigstore/cosign/v2/pkg/cosign/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/rekor/pkg/generated/client"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
)

// Mode is how an image was signed.
type Mode string

// The signing modes.
const (
	ModeKeyless Mode = "keyless" // ephemeral key, Fulcio certificate for an OIDC identity
	ModeKey     Mode = "key"     // a long-lived private key
)

// SignerOptions configure NewSigner.
type SignerOptions struct {
	// Key is a key reference (file, env:VAR, env://VAR, cosign URIs); empty
	// means keyless.
	Key KeyRef
	// IDToken is a JWT or a file holding one; empty means
	// SIGSTORE_ID_TOKEN, then GitHub Actions.
	IDToken string
	// FulcioURL and RekorURL default to the public-good instance
	// (pipelines/signpolicy).
	FulcioURL string
	RekorURL  string
	// TlogUpload records each signature in Rekor (the default in cosign);
	// without it verifiers must accept signatures without a log entry.
	TlogUpload bool
	// InsecureSkipSCT accepts a Fulcio certificate without a valid
	// certificate-transparency timestamp (a Fulcio without a CT log).
	InsecureSkipSCT bool
	// Env reads environment variables (COSIGN_PASSWORD, SIGSTORE_ID_TOKEN,
	// ACTIONS_ID_TOKEN_*, env: key references).
	Env func(string) string
	// Registry are the default options of the registry calls (auth,
	// context); a call may pass its own instead.
	Registry []remote.Option
	// Progress reports steps; nil is silent.
	Progress func(format string, args ...any)
}

// Signer signs images and attestations with one key (or one Fulcio
// certificate) for all of them.
type Signer struct {
	opts  SignerOptions
	mode  Mode
	sv    signature.SignerVerifier
	cert  *Certificate
	rekor *client.Rekor
}

// Result describes one signature or attestation that was written. It holds
// no secret: the key is named by its reference only.
type Result struct {
	Reference             string `json:"reference"` // repository@digest that was signed
	Digest                string `json:"digest"`
	Signature             string `json:"signature,omitempty"`   // tag holding the signatures
	Attestation           string `json:"attestation,omitempty"` // tag holding the attestations
	PredicateType         string `json:"predicate_type,omitempty"`
	Mode                  Mode   `json:"mode"`
	Key                   string `json:"key,omitempty"`
	FulcioURL             string `json:"fulcio_url,omitempty"`
	RekorURL              string `json:"rekor_url,omitempty"`
	Tlog                  bool   `json:"tlog"`
	TlogIndex             *int64 `json:"tlog_index,omitempty"`
	CertificateIdentity   string `json:"certificate_identity,omitempty"`
	CertificateOIDCIssuer string `json:"certificate_oidc_issuer,omitempty"`
}

// NewSigner loads the key, or for keyless signing gets an identity token,
// an ephemeral key and a Fulcio certificate for it.
func NewSigner(ctx context.Context, o SignerOptions) (*Signer, error) {
	if o.Env == nil {
		o.Env = func(string) string { return "" }
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	if o.FulcioURL == "" {
		o.FulcioURL = signpolicy.DefaultFulcioURL
	}
	if o.RekorURL == "" {
		o.RekorURL = signpolicy.DefaultRekorURL
	}
	s := &Signer{opts: o}
	if o.TlogUpload {
		rc, err := newRekorClient(o.RekorURL)
		if err != nil {
			return nil, err
		}
		s.rekor = rc
	}

	if o.Key != "" {
		if err := o.Key.Validate(); err != nil {
			return nil, err
		}
		if o.IDToken != "" {
			return nil, signpolicy.ErrKeyAndToken
		}
		sv, err := LoadSigner(ctx, o.Key, o.Env)
		if err != nil {
			return nil, err
		}
		s.mode, s.sv = ModeKey, sv
		return s, nil
	}

	tok, err := IdentityToken(ctx, o.IDToken, o.Env)
	if err != nil {
		return nil, err
	}
	o.Progress("keyless signing with the %s (issuer %s); asking Fulcio at %s for a certificate", tok, tok.Claims.Issuer, o.FulcioURL)
	priv, err := cosign.GeneratePrivateKey()
	if err != nil {
		return nil, err
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	cert, err := requestCertificate(ctx, o.FulcioURL, tok, sv)
	if err != nil {
		return nil, err
	}
	if !o.InsecureSkipSCT {
		if err := verifySCT(ctx, o.FulcioURL, cert); err != nil {
			return nil, err
		}
	}
	o.Progress("Fulcio certified %s (issuer %s) until %s", cert.Identity, cert.Issuer, cert.Cert.NotAfter.UTC().Format("15:04:05Z"))
	s.mode, s.sv, s.cert = ModeKeyless, sv, cert
	return s, nil
}

// Mode says how this signer signs.
func (s *Signer) Mode() Mode { return s.mode }

// Certificate is the Fulcio certificate of a keyless signer, else nil.
func (s *Signer) Certificate() *Certificate { return s.cert }

func (s *Signer) result(d name.Digest) Result {
	r := Result{Reference: d.String(), Digest: d.DigestStr(), Mode: s.mode, Tlog: s.rekor != nil}
	if s.rekor != nil {
		r.RekorURL = s.opts.RekorURL
	}
	if s.cert != nil {
		r.FulcioURL = s.opts.FulcioURL
		r.CertificateIdentity, r.CertificateOIDCIssuer = s.cert.Identity, s.cert.Issuer
	} else {
		r.Key = string(s.opts.Key)
	}
	return r
}

func (s *Signer) ociOptions(reg []remote.Option) []ociremote.Option {
	if len(reg) == 0 {
		reg = s.opts.Registry
	}
	return []ociremote.Option{ociremote.WithRemoteOptions(reg...)}
}

// rekorPEM is what Rekor records as the signer: the certificate, or the
// public key.
func (s *Signer) rekorPEM() ([]byte, error) {
	if s.cert != nil {
		return s.cert.CertPEM, nil
	}
	pub, err := s.sv.PublicKey()
	if err != nil {
		return nil, err
	}
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

func (s *Signer) tlogError(err error) error {
	// The Rekor client's errors repeat the URL at every retry layer; the
	// network error underneath says it all.
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		err = opErr
	}
	return fmt.Errorf("%w at %s: %v", ErrTlogUpload, s.opts.RekorURL, err)
}

// SignImage signs d with cosign's simple-signing payload and pushes the
// signature to the signature tag (<repo>:sha256-<hex>.sig), keeping the
// signatures already there. reg, when given, replaces
// SignerOptions.Registry for this call (e.g. another registry's auth).
func (s *Signer) SignImage(ctx context.Context, d name.Digest, reg ...remote.Option) (Result, error) {
	res := s.result(d)
	ociOpts := s.ociOptions(reg)
	payload, err := (&sigpayload.Cosign{Image: d}).MarshalJSON()
	if err != nil {
		return res, err
	}
	sig, err := s.sv.SignMessage(bytes.NewReader(payload), sigopts.WithContext(ctx))
	if err != nil {
		return res, fmt.Errorf("signing %s: %w", d, err)
	}
	var opts []static.Option
	if s.cert != nil {
		opts = append(opts, static.WithCertChain(s.cert.CertPEM, s.cert.ChainPEM))
	}
	if s.rekor != nil {
		signer, err := s.rekorPEM()
		if err != nil {
			return res, err
		}
		sum := sha256.New()
		sum.Write(payload)
		entry, err := cosign.TLogUpload(ctx, s.rekor, sig, sum, signer)
		if err != nil {
			return res, s.tlogError(err)
		}
		res.TlogIndex = entry.LogIndex
		opts = append(opts, static.WithBundle(cbundle.EntryToBundle(entry)))
	}
	ociSig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(sig), opts...)
	if err != nil {
		return res, err
	}
	se, err := ociremote.SignedEntity(d, ociOpts...)
	var notFound *ociremote.EntityNotFoundError
	switch {
	case errors.As(err, &notFound):
		se = ociremote.SignedUnknown(d, ociOpts...)
	case err != nil:
		return res, err
	}
	newSE, err := mutate.AttachSignatureToEntity(se, ociSig, mutate.WithDupeDetector(cremote.NewDupeDetector(s.sv)))
	if err != nil {
		return res, err
	}
	if err := ociremote.WriteSignatures(d.Repository, newSE, ociOpts...); err != nil {
		return res, err
	}
	tag, err := ociremote.SignatureTag(d, ociOpts...)
	if err != nil {
		return res, err
	}
	res.Signature = tag.String()
	return res, nil
}

// PredicateTypeURI maps cosign's short predicate types (spdxjson,
// cyclonedx, slsaprovenance, ...) to their URIs; a URI is returned as is.
func PredicateTypeURI(t string) (string, error) {
	uri, err := options.ParsePredicateType(t)
	if err != nil {
		short := make([]string, 0, len(options.PredicateTypeMap))
		for k := range options.PredicateTypeMap {
			short = append(short, k)
		}
		return "", fmt.Errorf("unknown predicate type %q: give one of %s, or a URI", t, strings.Join(slices.Sorted(slices.Values(short)), ", "))
	}
	return uri, nil
}

// Attest wraps predicate in an in-toto statement about d, signs it as a
// DSSE envelope and pushes it to the attestation tag
// (<repo>:sha256-<hex>.att), as `cosign attest` does.
func (s *Signer) Attest(ctx context.Context, d name.Digest, predicate []byte, predicateType string, reg ...remote.Option) (Result, error) {
	res := s.result(d)
	ociOpts := s.ociOptions(reg)
	uri, err := PredicateTypeURI(predicateType)
	if err != nil {
		return res, err
	}
	res.PredicateType = uri
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return res, err
	}
	st, err := attestation.GenerateStatement(attestation.GenerateOpts{
		Predicate: bytes.NewReader(predicate),
		Type:      predicateType,
		Digest:    h.Hex,
		Repo:      d.Repository.String(),
	})
	if err != nil {
		return res, fmt.Errorf("the predicate is not a valid %s document: %w", predicateType, err)
	}
	payload, err := json.Marshal(st)
	if err != nil {
		return res, err
	}
	envelope, err := dsse.WrapSigner(s.sv, types.IntotoPayloadType).SignMessage(bytes.NewReader(payload), sigopts.WithContext(ctx))
	if err != nil {
		return res, fmt.Errorf("signing the attestation of %s: %w", d, err)
	}
	opts := []static.Option{
		static.WithLayerMediaType(types.DssePayloadType),
		static.WithAnnotations(map[string]string{"predicateType": uri}),
	}
	if s.cert != nil {
		opts = append(opts, static.WithCertChain(s.cert.CertPEM, s.cert.ChainPEM))
	}
	if s.rekor != nil {
		signer, err := s.rekorPEM()
		if err != nil {
			return res, err
		}
		entry, err := cosign.TLogUploadDSSEEnvelope(ctx, s.rekor, envelope, signer)
		if err != nil {
			return res, s.tlogError(err)
		}
		res.TlogIndex = entry.LogIndex
		opts = append(opts, static.WithBundle(cbundle.EntryToBundle(entry)))
	}
	att, err := static.NewAttestation(envelope, opts...)
	if err != nil {
		return res, err
	}
	se := ociremote.SignedUnknown(d, ociOpts...)
	newSE, err := mutate.AttachAttestationToEntity(se, att, mutate.WithDupeDetector(cremote.NewDupeDetector(s.sv)))
	if err != nil {
		return res, err
	}
	if err := ociremote.WriteAttestations(d.Repository, newSE, ociOpts...); err != nil {
		return res, err
	}
	tag, err := ociremote.AttestationTag(d, ociOpts...)
	if err != nil {
		return res, err
	}
	res.Attestation = tag.String()
	return res, nil
}
