package signing

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/tuf"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
)

// A trusted root is Sigstore's trusted_root.json (the protobuf-specs
// TrustedRoot in its JSON form, what `cosign verify --trusted-root` and
// sigstore-go read): the Fulcio CA chains, the Rekor and CT log keys and
// the timestamp authorities. Saved once on a connected host, it lets a
// host without network verify keyless signatures.

// PublicGoodTUF is the TUF repository of the public-good Sigstore, whose
// root of trust is built into sigstore-go.
const PublicGoodTUF = tuf.DefaultMirror

// tufTimeout bounds fetching the trusted root: the TUF client would
// otherwise wait as long as the network lets it.
const tufTimeout = 60 * time.Second

// Trust-root problems, for the front end to add what to do.
var (
	// ErrTUFFetch: the TUF repository could not be read or its metadata did
	// not verify.
	ErrTUFFetch = errors.New("cannot fetch the Sigstore trusted root from TUF")
	// ErrTUFRootNeeded: a TUF mirror other than the public-good one needs
	// its own initial root.json; the built-in one only signs public-good
	// metadata.
	ErrTUFRootNeeded = errors.New("a TUF repository other than the public-good one needs its initial root.json")
	// ErrTUFRootInvalid: the initial root.json given does not parse as TUF
	// root metadata.
	ErrTUFRootInvalid = errors.New("the initial TUF root given is not a TUF root.json")
	// ErrTrustedRootAndCARoots: both a trusted root and separate Fulcio CA
	// roots were given for keyless verification.
	ErrTrustedRootAndCARoots = errors.New("both a trusted root and separate Fulcio CA roots were given")
	// ErrTrustedRootNoCA, ErrTrustedRootNoRekor and ErrTrustedRootNoCTLog:
	// the trusted root lacks what the policy needs.
	ErrTrustedRootNoCA    = errors.New("holds no Fulcio certificate authority, so it cannot verify keyless signatures")
	ErrTrustedRootNoRekor = errors.New("holds no transparency-log (Rekor) key, so it cannot check transparency-log entries")
	ErrTrustedRootNoCTLog = errors.New("holds no certificate-transparency log key, so it cannot check the timestamps in Fulcio certificates")
)

// TrustedRootError is a trusted root file that cannot be used.
type TrustedRootError struct {
	Path string
	Msg  string
	Err  error
}

func (e *TrustedRootError) Error() string {
	return fmt.Sprintf("the trusted root %s %s", e.Path, e.Msg)
}
func (e *TrustedRootError) Unwrap() error { return e.Err }

// LoadTrustedRoot reads a trusted_root.json.
func LoadTrustedRoot(path string) (*root.TrustedRoot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &TrustedRootError{Path: path, Msg: fmt.Sprintf("cannot be read (%v)", errors.Unwrap(err)), Err: err}
	}
	tr, err := root.NewTrustedRootFromJSON(b)
	if err != nil {
		return nil, &TrustedRootError{Path: path, Msg: fmt.Sprintf("is not a Sigstore trusted_root.json (%v)", err), Err: err}
	}
	if len(tr.FulcioCertificateAuthorities()) == 0 && len(tr.RekorLogs()) == 0 {
		return nil, &TrustedRootError{Path: path, Msg: "holds neither a Fulcio certificate authority nor a Rekor key"}
	}
	return tr, nil
}

// TrustedRootSummary counts what a trusted root holds.
type TrustedRootSummary struct {
	FulcioCAs   int `json:"fulcio_certificate_authorities"`
	RekorLogs   int `json:"rekor_logs"`
	CTLogs      int `json:"ct_logs"`
	Timestamper int `json:"timestamp_authorities"`
}

// Summarize counts the parts of tr.
func Summarize(tr root.TrustedMaterial) TrustedRootSummary {
	return TrustedRootSummary{
		FulcioCAs:   len(tr.FulcioCertificateAuthorities()),
		RekorLogs:   len(tr.RekorLogs()),
		CTLogs:      len(tr.CTLogs()),
		Timestamper: len(tr.TimestampingAuthorities()),
	}
}

// TUFSource is where FetchTrustedRoot reads trusted_root.json.
type TUFSource struct {
	// Mirror is the TUF repository URL; empty means PublicGoodTUF.
	Mirror string
	// RootJSON is the repository's initial root.json, required unless the
	// mirror is the public-good one.
	RootJSON []byte
	// Transport carries the TUF requests; nil means http.DefaultTransport
	// (where --connect-to applies).
	Transport http.RoundTripper
}

// FetchTrustedRoot downloads trusted_root.json from a TUF repository,
// verifying the repository's metadata chain from its root.json, and
// returns the verified file as served.
func FetchTrustedRoot(ctx context.Context, src TUFSource) ([]byte, error) {
	mirror := src.Mirror
	if mirror == "" {
		mirror = PublicGoodTUF
	}
	if u, err := url.Parse(mirror); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("the TUF repository URL %q is not an http(s) URL", mirror)
	}
	opts := tuf.DefaultOptions().WithRepositoryBaseURL(mirror)
	switch {
	case src.RootJSON != nil:
		if _, err := metadata.Root().FromBytes(src.RootJSON); err != nil {
			return nil, fmt.Errorf("%w (%v)", ErrTUFRootInvalid, err)
		}
		opts.Root = src.RootJSON
	case mirror != PublicGoodTUF:
		return nil, fmt.Errorf("%w (%s)", ErrTUFRootNeeded, mirror)
	}
	rt := src.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	ctx, cancel := context.WithTimeout(ctx, tufTimeout)
	defer cancel()
	// The fetcher's own client ignores contexts; a per-request context
	// keeps Ctrl-C and the timeout effective.
	f := fetcher.NewDefaultFetcher()
	f.SetHTTPUserAgent("botcore")
	f.SetHTTPClient(&http.Client{Transport: ctxTransport{ctx: ctx, rt: rt}})
	// Saving is an explicit refresh: no cache is read (an old copy would
	// hide an unreachable repository) or written under $HOME.
	opts = opts.WithFetcher(f).WithDisableLocalCache().WithContext(ctx)
	c, err := tuf.New(opts)
	if err != nil {
		return nil, fmt.Errorf("%w at %s (%s)", ErrTUFFetch, mirror, rootCause(err))
	}
	b, err := c.GetTarget("trusted_root.json")
	if err != nil {
		return nil, fmt.Errorf("%w at %s (%s)", ErrTUFFetch, mirror, rootCause(err))
	}
	if _, err := root.NewTrustedRootFromJSON(b); err != nil {
		return nil, fmt.Errorf("%w at %s: its trusted_root.json does not parse (%v)", ErrTUFFetch, mirror, err)
	}
	return b, nil
}

type ctxTransport struct {
	ctx context.Context
	rt  http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.rt.RoundTrip(r.WithContext(t.ctx))
}

// rootCause is the part of a TUF client error a user can act on: the
// network failure when there is one, else the error's first line.
func rootCause(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer within " + tufTimeout.String()
	}
	return firstLine(err.Error())
}

// TrustRootParts are the pieces of a private Sigstore a trusted root is
// built from: files holding PEM certificates or public keys.
type TrustRootParts struct {
	// FulcioChains are PEM files, each one Fulcio CA: its self-signed root
	// and any intermediates.
	FulcioChains []string
	FulcioURL    string
	// RekorKeys and CTLogKeys are PEM public keys of Rekor logs and
	// certificate-transparency logs.
	RekorKeys []string
	RekorURL  string
	CTLogKeys []string
}

// Empty reports whether no piece was given.
func (p TrustRootParts) Empty() bool {
	return len(p.FulcioChains) == 0 && len(p.RekorKeys) == 0 && len(p.CTLogKeys) == 0
}

// BuildTrustedRoot makes a trusted root of the given pieces, valid from the
// roots' NotBefore (CAs) or from the Unix epoch (log keys, which carry no
// dates).
func BuildTrustedRoot(p TrustRootParts) ([]byte, error) {
	if len(p.FulcioChains) == 0 && len(p.RekorKeys) == 0 {
		return nil, errors.New("a trusted root needs a Fulcio CA chain or a Rekor key")
	}
	var cas []root.CertificateAuthority
	for _, path := range p.FulcioChains {
		ca, err := fulcioCA(path, p.FulcioURL)
		if err != nil {
			return nil, err
		}
		cas = append(cas, ca)
	}
	rekor, err := logKeys(p.RekorKeys, "Rekor", p.RekorURL)
	if err != nil {
		return nil, err
	}
	ct, err := logKeys(p.CTLogKeys, "CT log", "")
	if err != nil {
		return nil, err
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, cas, ct, nil, rekor)
	if err != nil {
		return nil, err
	}
	b, err := tr.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("cannot encode the trusted root: %w", err)
	}
	return b, nil
}

func fulcioCA(path, uri string) (*root.FulcioCertificateAuthority, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the Fulcio CA chain %s: %v", path, errors.Unwrap(err))
	}
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM(b)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("the Fulcio CA chain %s holds no PEM certificate: give your Fulcio's chain (GET /api/v1/rootCert)", path)
	}
	ca := &root.FulcioCertificateAuthority{URI: uri}
	for _, c := range certs {
		if c.CheckSignatureFrom(c) != nil {
			ca.Intermediates = append(ca.Intermediates, c)
			continue
		}
		if ca.Root != nil {
			return nil, fmt.Errorf("the Fulcio CA chain %s holds more than one self-signed root: give each CA in its own file", path)
		}
		ca.Root = c
	}
	if ca.Root == nil {
		return nil, fmt.Errorf("the Fulcio CA chain %s holds no self-signed root certificate: add your Fulcio's root", path)
	}
	ca.ValidityPeriodStart = ca.Root.NotBefore
	return ca, nil
}

// logKeys reads transparency-log public keys, keyed by their log ID (the
// SHA-256 of the key's DER SubjectPublicKeyInfo, as Rekor and RFC 6962
// define it).
func logKeys(paths []string, what, baseURL string) (map[string]*root.TransparencyLog, error) {
	logs := map[string]*root.TransparencyLog{}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("cannot read the %s public key %s: %v", what, path, errors.Unwrap(err))
		}
		pub, err := cryptoutils.UnmarshalPEMToPublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("the %s public key %s is not a PEM public key", what, path)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("the %s public key %s is of an unsupported type", what, path)
		}
		sigHash, err := signatureHash(pub)
		if err != nil {
			return nil, fmt.Errorf("the %s public key %s: %v", what, path, err)
		}
		id := sha256.Sum256(der)
		logs[hex.EncodeToString(id[:])] = &root.TransparencyLog{
			BaseURL:             baseURL,
			ID:                  id[:],
			ValidityPeriodStart: time.Unix(0, 0),
			HashFunc:            crypto.SHA256,
			PublicKey:           pub,
			SignatureHashFunc:   sigHash,
		}
	}
	return logs, nil
}

// signatureHash is the digest the log signs with for a key type (the
// pairings protobuf-specs' PublicKeyDetails allow).
func signatureHash(pub crypto.PublicKey) (crypto.Hash, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return crypto.SHA256, nil
		case elliptic.P384():
			return crypto.SHA384, nil
		case elliptic.P521():
			return crypto.SHA512, nil
		}
		return 0, fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return crypto.SHA256, nil
	case ed25519.PublicKey:
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("unsupported key type %T", pub)
}
