package signing

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bot-core/delivery/pipelines/signpolicy"
)

func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(claims)) + "." + enc([]byte("sig"))
}

func TestParseToken(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	tok, err := ParseToken(jwt(`{"iss":"https://issuer","sub":"repo:acme/x","aud":["sigstore"],"exp":`+strconv.FormatInt(exp, 10)+`}`), "test")
	if err != nil || tok.Claims.Challenge() != "repo:acme/x" || tok.Claims.Audience[0] != "sigstore" {
		t.Fatalf("%+v %v", tok, err)
	}
	if strings.Contains(tok.String(), tok.Raw) {
		t.Error("String shows the token")
	}
	tok, err = ParseToken(jwt(`{"iss":"i","sub":"s","email":"a@b.c","email_verified":"true"}`), "test")
	if err != nil || tok.Claims.Challenge() != "a@b.c" || !bool(tok.Claims.EmailVerified) {
		t.Fatalf("%+v %v", tok, err)
	}
	for raw, want := range map[string]string{
		"not-a-jwt":                          "is not a JWT",
		jwt(`{"iss":"i","sub":"s","exp":1}`): "expired at 1970-01-01T00:00:01Z",
		jwt(`{"iss":"i"}`):                   "names no subject or email",
	} {
		if _, err := ParseToken(raw, "test"); err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), raw) {
			t.Errorf("ParseToken(%q) = %v, want %q without the token", raw, err, want)
		}
	}
}

func TestKeyRef(t *testing.T) {
	env := map[string]string{"K": "pem"}
	for ref, want := range map[KeyRef]string{"env:K": "pem", "env://K": "pem"} {
		b, err := ref.read(func(k string) string { return env[k] })
		if err != nil || string(b) != want {
			t.Errorf("%s: %q %v", ref, b, err)
		}
	}
	if _, err := KeyRef("env:MISSING").read(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "MISSING, which is not set") {
		t.Errorf("missing variable: %v", err)
	}
	for ref, local := range map[KeyRef]bool{"cosign.key": true, "env:K": true, "k8s://ns/secret": false, "awskms:///alias/x": false, "pkcs11:token=x": false} {
		if ref.local() != local {
			t.Errorf("%s: local %v", ref, !local)
		}
	}
	if err := KeyRef("-----BEGIN PRIVATE KEY-----\nabc").Validate(); err == nil || strings.Contains(err.Error(), "abc") {
		t.Errorf("a pasted key: %v", err)
	}
}

func TestGitHubActionsToken(t *testing.T) {
	const requestToken = "request-token-secret"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "bearer "+requestToken || r.URL.Query().Get("audience") != "sigstore" || r.URL.Query().Get("api-version") != "2.0" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"count":1,"value":"the-jwt"}`))
	}))
	defer srv.Close()
	got, err := GitHubActionsToken(context.Background(), srv.URL+"/token?api-version=2.0", requestToken)
	if err != nil || got != "the-jwt" {
		t.Fatalf("%q %v", got, err)
	}
	_, err = GitHubActionsToken(context.Background(), srv.URL+"/token?api-version=2.0", "wrong")
	if err == nil || !strings.Contains(err.Error(), "refused the request token (HTTP 401)") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong request token: %v", err)
	}
}

// TestOptionErrors: mistakes in the options come back as errors a front end
// can match (to add its own flag names), and say nothing about flags.
func TestOptionErrors(t *testing.T) {
	ctx := context.Background()
	noEnv := func(string) string { return "" }
	_, errSigner := NewSigner(ctx, SignerOptions{Key: "cosign.key", IDToken: jwt(`{"sub":"s"}`), Env: noEnv})
	_, errRekor := NewSigner(ctx, SignerOptions{RekorURL: "ftp://rekor.test", TlogUpload: true, Env: noEnv})
	_, errNoToken := IdentityToken(ctx, "", noEnv)
	_, errToken := IdentityToken(ctx, filepath.Join(t.TempDir(), "missing-token"), noEnv)
	verifier := func(o VerifyOptions) error { _, err := NewVerifier(ctx, o); return err }
	var urlErr *URLError

	for _, c := range []struct {
		name string
		err  error
		is   func(error) bool
	}{
		{"key and token", errSigner, func(err error) bool { return errors.Is(err, signpolicy.ErrKeyAndToken) }},
		{"Rekor URL", errRekor, func(err error) bool {
			return errors.As(err, &urlErr) && urlErr.Service == Rekor && urlErr.URL == "ftp://rekor.test"
		}},
		{"no token", errNoToken, func(err error) bool { return errors.Is(err, ErrNoIdentityToken) }},
		{"unreadable token", errToken, func(err error) bool { return errors.Is(err, ErrTokenUnreadable) }},
		{"pasted key", KeyRef("-----BEGIN PRIVATE KEY-----\nabc").Validate(), func(err error) bool { return errors.Is(err, ErrKeyNotRef) }},
		{"no policy", verifier(VerifyOptions{}), func(err error) bool { return errors.Is(err, ErrNoVerifyPolicy) }},
		{"key and identity", verifier(VerifyOptions{Key: "cosign.pub", CertificateIdentity: "a@b.c"}), func(err error) bool { return errors.Is(err, ErrKeyAndIdentity) }},
		{"no identity", verifier(VerifyOptions{CertificateOIDCIssuer: "https://issuer"}), func(err error) bool { return errors.Is(err, ErrNoIdentity) }},
		{"no issuer", verifier(VerifyOptions{CertificateIdentity: "a@b.c"}), func(err error) bool { return errors.Is(err, ErrNoIssuer) }},
		{"identity pattern", verifier(VerifyOptions{CertificateIdentityRegexp: "(", CertificateOIDCIssuer: "https://issuer"}),
			func(err error) bool { return errors.Is(err, ErrIdentityRegexp) && strings.Contains(err.Error(), `"("`) }},
		{"issuer pattern", verifier(VerifyOptions{CertificateIdentity: "a@b.c", CertificateOIDCIssuerRegexp: "[", CARoots: "x"}),
			func(err error) bool { return errors.Is(err, ErrIssuerRegexp) }},
	} {
		if c.err == nil || !c.is(c.err) {
			t.Errorf("%s: got %v (%T)", c.name, c.err, c.err)
			continue
		}
		if strings.Contains(c.err.Error(), "--") {
			t.Errorf("%s: the message names a flag: %v", c.name, c.err)
		}
	}
}
