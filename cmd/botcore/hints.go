package main

import (
	"errors"
	"fmt"

	"github.com/bot-core/delivery/cmd/botcore/internal/deploy"
	"github.com/bot-core/delivery/cmd/botcore/internal/imagesrc"
	"github.com/bot-core/delivery/cmd/botcore/internal/scan"
	"github.com/bot-core/delivery/cmd/botcore/internal/signing"
	"github.com/bot-core/delivery/pipelines/signpolicy"
)

// The internal packages say what went wrong without naming flags (they
// cannot know how a value was given); withHint adds what to do about it in
// this CLI's terms, so that the user still reads one sentence that ends
// with the fix.

// hinted is an error with the CLI's advice appended.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() + ": " + h.hint }
func (h *hinted) Unwrap() error { return h.err }

// withHint appends the advice for err, if there is one; an error that has
// its advice already is left as it is.
func withHint(err error) error {
	if err == nil {
		return nil
	}
	var done *hinted
	if errors.As(err, &done) {
		return err
	}
	if h := hintFor(err); h != "" {
		return &hinted{err: err, hint: h}
	}
	return err
}

// sentinelHints are the advice for the internal packages' sentinel errors.
var sentinelHints = []struct {
	err  error
	hint string
}{
	{imagesrc.ErrNoSource, "pass an image reference, --layout DIR or --tarball FILE"},
	{scan.ErrDBDownload, "check the network or --db-repository, or pass --db-dir with a DB downloaded beforehand"},

	{signing.ErrKeyNotRef, "put the key in a file or an environment variable and pass its name to --key"},
	{signing.ErrNoIdentityToken, "pass --identity-token, set SIGSTORE_ID_TOKEN, or sign with --key"},
	{signing.ErrTokenUnreadable, "give --identity-token a JWT or the path of a file holding one"},
	{signpolicy.ErrKeyAndToken, "drop --identity-token or drop --key"},
	{signing.ErrTlogUpload, "check --rekor-url, or sign with --tlog-upload=false (verifiers then need --insecure-ignore-tlog)"},
	{signing.ErrNoSCT, "pass --insecure-ignore-sct only for a private Fulcio without a CT log"},

	{signing.ErrNoVerifyPolicy, "give the key (--key) or the expected signer (--certificate-identity or --certificate-identity-regexp, with --certificate-oidc-issuer or --certificate-oidc-issuer-regexp)"},
	{signing.ErrKeyAndIdentity, "give one or the other: --key for a key signature, --certificate-identity and --certificate-oidc-issuer for a keyless one"},
	{signing.ErrNoIdentity, "add --certificate-identity (e.g. the signer's email or workflow URL) or --certificate-identity-regexp"},
	{signing.ErrNoIssuer, "add --certificate-oidc-issuer (e.g. https://token.actions.githubusercontent.com) or --certificate-oidc-issuer-regexp"},
	{signing.ErrIdentityRegexp, "fix --certificate-identity-regexp"},
	{signing.ErrIssuerRegexp, "fix --certificate-oidc-issuer-regexp"},
	{signing.ErrTrustRoot, "check the network, or pass --ca-roots with the root certificate of your Fulcio"},
	{signing.ErrCTLogKeys, "set SIGSTORE_CT_LOG_PUBLIC_KEY_FILE, or pass --insecure-ignore-sct for a Fulcio without a CT log"},
	{signing.ErrRekorKeys, "set SIGSTORE_REKOR_PUBLIC_KEY, or pass --insecure-ignore-tlog for images signed with --tlog-upload=false"},
}

func hintFor(err error) string {
	var (
		platform *imagesrc.PlatformError
		input    *imagesrc.InputError
		url      *signing.URLError
		fulcio   *signing.FulcioError
		verify   *signing.VerificationError
		mixed    *deploy.MixedVersionsError
	)
	switch {
	case errors.As(err, &verify):
		return verificationHint(verify)
	case errors.As(err, &platform):
		if platform.Single && len(platform.Have) == 1 {
			return fmt.Sprintf("pass --platform %s or leave --platform out", platform.Have[0])
		}
		return "pass --platform with one of those"
	case errors.As(err, &input):
		if input.Kind == imagesrc.Layout {
			return "--layout takes an OCI image layout directory (with index.json and blobs/)"
		}
		return "--tarball takes one image saved with docker save (optionally gzipped) or an OCI image layout as a tar; a layout directory goes to --layout"
	case errors.As(err, &url):
		if url.Service == signing.Fulcio {
			return "check --fulcio-url"
		}
		return "check --rekor-url"
	case errors.As(err, &fulcio):
		switch {
		case fulcio.Status == 0:
			return "check --fulcio-url and the network"
		case fulcio.Status >= 500:
			return "check --fulcio-url or retry later"
		}
		return "is --fulcio-url a Fulcio server?"
	case errors.As(err, &mixed):
		return "pass --previous to name the version to roll back to"
	}
	for _, s := range sentinelHints {
		if errors.Is(err, s.err) {
			return s.hint
		}
	}
	return ""
}

// verificationHint says what to do about a failed verification, in terms
// of botcore's commands and flags.
func verificationHint(e *signing.VerificationError) string {
	switch e.Reason {
	case signing.ReasonUnsigned:
		if e.Kind == "attestation" {
			return fmt.Sprintf("attach one with `botcore attest %s --predicate FILE --type %s`", e.Digest, e.PredicateType)
		}
		return fmt.Sprintf("sign it with `botcore sign %s`", e.Digest)
	case signing.ReasonOtherType:
		return fmt.Sprintf("attest it with `botcore attest --type %s`", e.PredicateType)
	case signing.ReasonSigner:
		return "check --certificate-identity and --certificate-oidc-issuer"
	case signing.ReasonUntrustedCA:
		return "pass --ca-roots with the root certificate of the Fulcio that signed it"
	case signing.ReasonExpired:
		return "verify with the transparency log (without --insecure-ignore-tlog), or re-sign"
	case signing.ReasonNoSCT:
		return "pass --insecure-ignore-sct for a private Fulcio without a CT log"
	case signing.ReasonNoTlog:
		return "if it was signed with --tlog-upload=false, verify with --insecure-ignore-tlog"
	case signing.ReasonNotKeyless:
		return "verify with --key"
	case signing.ReasonNotInTrustedRoot:
		return "pass --trusted-root with the trusted root of the Sigstore that signed it (botcore trust-root save)"
	}
	return ""
}
