package signing

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Environment variables the identity token is read from.
const (
	// EnvIDToken holds a raw OIDC identity token (cosign's own variable).
	EnvIDToken = "SIGSTORE_ID_TOKEN"
	// EnvGitHubRequestURL and EnvGitHubRequestToken are set by GitHub Actions
	// in jobs with `permissions: id-token: write`.
	EnvGitHubRequestURL   = "ACTIONS_ID_TOKEN_REQUEST_URL"
	EnvGitHubRequestToken = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
)

// Audience is the audience Fulcio requires in identity tokens.
const Audience = "sigstore"

// Where an identity token came from.
const (
	// SourceGiven is SignerOptions.IDToken (botcore's --identity-token).
	SourceGiven = "given"
	// SourceActions is the GitHub Actions ID-token endpoint.
	SourceActions = "GitHub Actions"
)

// Token is an identity token and where it came from. Its String never shows
// the token.
type Token struct {
	Raw string
	// Source is SourceGiven, EnvIDToken or SourceActions.
	Source string
	Claims Claims
}

func (t Token) String() string { return describeSource(t.Source) }

// describeSource names a token by its source: "given identity token",
// "identity token from SIGSTORE_ID_TOKEN".
func describeSource(source string) string {
	if source == SourceGiven {
		return "given identity token"
	}
	return "identity token from " + source
}

// Claims are the unverified claims of an identity token that matter for
// Fulcio: who it names and whether it can still be used.
type Claims struct {
	Issuer        string    `json:"iss"`
	Subject       string    `json:"sub"`
	Email         string    `json:"email"`
	EmailVerified boolish   `json:"email_verified"`
	Audience      audiences `json:"aud"`
	Expiry        int64     `json:"exp"`
}

// Challenge is the value Fulcio asks to be signed as proof of possession:
// the email for email identities, the subject otherwise (the rule cosign
// applies too).
func (c Claims) Challenge() string {
	if c.Email != "" {
		return c.Email
	}
	return c.Subject
}

type boolish bool

func (b *boolish) UnmarshalJSON(data []byte) error {
	s := strings.Trim(string(data), `"`)
	*b = boolish(strings.EqualFold(s, "true"))
	return nil
}

type audiences []string

func (a *audiences) UnmarshalJSON(data []byte) error {
	var one string
	if err := json.Unmarshal(data, &one); err == nil {
		*a = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// ParseToken reads the claims of a JWT without verifying it (Fulcio does
// that); it only catches tokens Fulcio would refuse for a plain reason.
func ParseToken(raw, source string) (Token, error) {
	raw = strings.TrimSpace(raw)
	what := describeSource(source)
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return Token{}, fmt.Errorf("the %s is not a JWT (three dot-separated parts)", what)
	}
	body, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return Token{}, fmt.Errorf("the %s is not a JWT: its payload is not base64url", what)
	}
	var c Claims
	if err := json.Unmarshal(body, &c); err != nil {
		return Token{}, fmt.Errorf("the %s is not a JWT: its payload is not a JSON object", what)
	}
	if c.Expiry != 0 && time.Unix(c.Expiry, 0).Before(time.Now()) {
		return Token{}, fmt.Errorf("the %s (issuer %s) expired at %s: get a fresh one", what, c.Issuer, time.Unix(c.Expiry, 0).UTC().Format(time.RFC3339))
	}
	if c.Challenge() == "" {
		return Token{}, fmt.Errorf("the %s (issuer %s) names no subject or email", what, c.Issuer)
	}
	return Token{Raw: raw, Source: source, Claims: c}, nil
}

// IdentityToken finds the token for keyless signing: the given value (a
// token, or a file holding one), then SIGSTORE_ID_TOKEN, then the GitHub
// Actions ID-token endpoint.
func IdentityToken(ctx context.Context, given string, env func(string) string) (Token, error) {
	if given != "" {
		raw := given
		if !looksLikeJWT(given) {
			b, err := os.ReadFile(given)
			if err != nil {
				// Not the read error: it would repeat the value, which may
				// be a mangled token.
				return Token{}, ErrTokenUnreadable
			}
			raw = string(b)
		}
		return ParseToken(raw, SourceGiven)
	}
	if raw := env(EnvIDToken); raw != "" {
		return ParseToken(raw, EnvIDToken)
	}
	reqURL, reqToken := env(EnvGitHubRequestURL), env(EnvGitHubRequestToken)
	if reqURL != "" && reqToken != "" {
		raw, err := GitHubActionsToken(ctx, reqURL, reqToken)
		if err != nil {
			return Token{}, err
		}
		return ParseToken(raw, SourceActions)
	}
	if reqURL != "" || reqToken != "" {
		return Token{}, fmt.Errorf("only one of %s and %s is set: GitHub Actions sets both in jobs with `permissions: id-token: write`", EnvGitHubRequestURL, EnvGitHubRequestToken)
	}
	return Token{}, ErrNoIdentityToken
}

// GitHubActionsToken asks the GitHub Actions ID-token endpoint for a token
// with the sigstore audience, the way cosign's github-actions provider does
// (GET <url>&audience=sigstore, "Authorization: bearer <request token>"),
// but through http.DefaultTransport (so --connect-to applies) and with
// errors that never carry the request token.
func GitHubActionsToken(ctx context.Context, requestURL, requestToken string) (string, error) {
	u, err := url.Parse(requestURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("%s is not an http(s) URL", EnvGitHubRequestURL)
	}
	q := u.Query()
	q.Set("audience", Audience)
	u.RawQuery = q.Encode()
	host := u.Host

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return "", err
		}
		req.Header.Set("Authorization", "bearer "+requestToken)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			lastErr = fmt.Errorf("cannot reach the GitHub Actions ID-token endpoint at %s: %v", host, unwrapURLError(err))
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return "", fmt.Errorf("the GitHub Actions ID-token endpoint at %s refused the request token (HTTP %d): give the job `permissions: id-token: write`", host, resp.StatusCode)
		case resp.StatusCode >= 500:
			lastErr = fmt.Errorf("the GitHub Actions ID-token endpoint at %s failed with HTTP %d: retry the job", host, resp.StatusCode)
			continue
		case resp.StatusCode != http.StatusOK:
			return "", fmt.Errorf("the GitHub Actions ID-token endpoint at %s answered HTTP %d", host, resp.StatusCode)
		}
		var payload struct {
			Value string `json:"value"`
		}
		if err := json.Unmarshal(body, &payload); err != nil || payload.Value == "" {
			return "", fmt.Errorf("the GitHub Actions ID-token endpoint at %s answered without a token (no JSON \"value\")", host)
		}
		return payload.Value, nil
	}
	return "", lastErr
}

func looksLikeJWT(s string) bool {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts[:2] {
		if p == "" || strings.Trim(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=") != "" {
			return false
		}
	}
	return true
}

// unwrapURLError drops url.Error's "Get <url>:" prefix, which would repeat
// the request URL in messages.
func unwrapURLError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}
