// Package signpolicy decides how a release is signed from what the caller
// gave: a key, an OIDC token, GitHub Actions' token request pair, or nothing.
// The Dagger module and the botcore CLI share its defaults, so the public
// Sigstore endpoints are named in one place.
package signpolicy

import "errors"

// The public Sigstore instance.
const (
	DefaultFulcioURL = "https://fulcio.sigstore.dev"
	DefaultRekorURL  = "https://rekor.sigstore.dev"
)

// Mode is how signatures are made.
type Mode string

const (
	Unsigned Mode = ""
	Key      Mode = "key"
	Keyless  Mode = "keyless"
)

// Inputs says which signing credentials were given (never their values).
type Inputs struct {
	Key, KeyPassword         bool
	IDToken                  bool
	RequestURL, RequestToken bool
}

// Mistakes in the choice of credentials; front ends word them with their own flag names.
var (
	ErrKeyAndToken        = errors.New("a signing key and an OIDC token were both given: key-based and keyless signing exclude each other")
	ErrTokenAndRequest    = errors.New("an OIDC token and a token request endpoint were both given: keyless signing takes one of them")
	ErrRequestHalf        = errors.New("the OIDC token request URL and the request token go together (GitHub Actions passes both)")
	ErrPasswordWithoutKey = errors.New("a key password was given without a key")
)

// Choose validates the combination and returns the signing mode.
func Choose(in Inputs) (Mode, error) {
	switch {
	case in.Key && (in.IDToken || in.RequestURL || in.RequestToken):
		return Unsigned, ErrKeyAndToken
	case in.IDToken && (in.RequestURL || in.RequestToken):
		return Unsigned, ErrTokenAndRequest
	case in.RequestURL != in.RequestToken:
		return Unsigned, ErrRequestHalf
	case in.KeyPassword && !in.Key:
		return Unsigned, ErrPasswordWithoutKey
	case in.Key:
		return Key, nil
	case in.IDToken || in.RequestURL:
		return Keyless, nil
	}
	return Unsigned, nil
}
