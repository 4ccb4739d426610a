package signing

import (
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// The errors below say what went wrong in Sigstore's terms. What to do about
// it usually means another flag or setting, which is the front end's to
// name: botcore's commands match these with errors.Is/As and add the hint.

// Problems with the options given.
var (
	// ErrKeyNotRef: a key reference holds the key itself (PEM), which no
	// message may echo.
	ErrKeyNotRef = errors.New("a key reference (a file, env:VAR or a cosign key URI) is expected, not the key itself")
	// ErrNoIdentityToken: keyless signing found no way to get a token.
	ErrNoIdentityToken = errors.New("keyless signing needs an OIDC identity token, and neither SIGSTORE_ID_TOKEN nor a GitHub Actions job with `permissions: id-token: write` provides one")
	// ErrTokenUnreadable: the given token is neither a JWT nor a readable
	// file holding one.
	ErrTokenUnreadable = errors.New("the given identity token is neither a JWT nor a readable file holding one")

	// ErrNoVerifyPolicy: neither a key nor an expected signer was given.
	ErrNoVerifyPolicy = errors.New("nothing to verify against: neither a public key nor the expected signer was given")
	// ErrKeyAndIdentity: a key and an expected signer were both given.
	ErrKeyAndIdentity = errors.New("a public key and an expected certificate signer were both given, but a signature is verified either with a key or keylessly")
	// ErrNoIdentity and ErrNoIssuer: keyless verification needs both the
	// expected signer and its OIDC issuer.
	ErrNoIdentity = errors.New("keyless verification needs the expected signer (the certificate identity)")
	ErrNoIssuer   = errors.New("keyless verification needs the expected OIDC issuer")
	// ErrIdentityRegexp and ErrIssuerRegexp wrap a pattern that does not
	// compile.
	ErrIdentityRegexp = errors.New("the certificate identity pattern is not a valid regular expression")
	ErrIssuerRegexp   = errors.New("the OIDC issuer pattern is not a valid regular expression")
)

// Trust material that could not be loaded.
var (
	ErrTrustRoot = errors.New("cannot load the Sigstore public-good trust root from TUF")
	ErrCTLogKeys = errors.New("cannot load the CT log keys that vouch for Fulcio certificates")
	ErrRekorKeys = errors.New("cannot load the transparency-log (Rekor) keys")
)

// Failures of the Sigstore services while signing.
var (
	// ErrTlogUpload: Rekor did not record a signature.
	ErrTlogUpload = errors.New("cannot record the signature in the transparency log")
	// ErrNoSCT: Fulcio's certificate has no valid certificate-transparency
	// timestamp (a private Fulcio without a CT log, or a wrong CT key).
	ErrNoSCT = errors.New("no valid certificate-transparency timestamp")
)

// Service is a Sigstore service botcore talks to.
type Service string

// The services.
const (
	Fulcio Service = "Fulcio"
	Rekor  Service = "Rekor"
)

// URLError is a service URL that is not an http(s) URL.
type URLError struct {
	Service Service
	URL     string
}

func (e *URLError) Error() string {
	return fmt.Sprintf("the %s URL %q is not an http(s) URL", e.Service, e.URL)
}

// FulcioError is a Fulcio that could not be used at the URL given: not
// reachable, failing, or not a Fulcio at all. (A Fulcio that refuses the
// identity token is a plain error: the token is to blame, not the URL.)
type FulcioError struct {
	URL string
	// Status is Fulcio's HTTP status; 0 when it was not reached.
	Status int
	Msg    string
	Err    error
}

func (e *FulcioError) Error() string { return e.Msg }
func (e *FulcioError) Unwrap() error { return e.Err }

// Reason is why a verification failed, for the caller to say what to do.
type Reason int

// The reasons.
const (
	ReasonOther       Reason = iota
	ReasonUnsigned           // nothing is stored for the digest
	ReasonOtherType          // attestations exist, none of the predicate type
	ReasonSigner             // signed, but not by the expected signer
	ReasonUntrustedCA        // the certificate chains to no trusted Fulcio
	ReasonExpired            // an expired certificate without a tlog entry
	ReasonNoSCT              // a certificate without a CT timestamp
	ReasonNoTlog             // no verifiable transparency-log entry
	ReasonWrongKey           // signed with another key
	ReasonNotKeyless         // signed with a key where keyless was expected
	// ReasonNotInTrustedRoot: the certificate chains to no Fulcio CA of
	// the trusted root file given (a root saved from another Sigstore).
	ReasonNotInTrustedRoot
)

// VerificationError is a failed verification, as one sentence saying what
// is wrong. Err is cosign's error.
type VerificationError struct {
	Reason Reason
	Digest name.Digest
	// Kind is "signature" or "attestation"; PredicateType the type asked
	// for (as given) when Kind is "attestation".
	Kind          string
	PredicateType string
	Msg           string
	Err           error
}

func (e *VerificationError) Error() string { return e.Msg }
func (e *VerificationError) Unwrap() error { return e.Err }
