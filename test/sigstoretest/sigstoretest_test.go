package sigstoretest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

func TestIssuerActionsEndpoint(t *testing.T) {
	i := NewIssuer(t)
	i.SetActionsIdentity(TokenClaims{Email: "ci@bot-core.test"})

	get := func(url, auth string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}
	// As cosign's github-actions provider calls it.
	resp, body := get(i.ActionsRequestURL+"&audience=sigstore", "bearer "+i.ActionsRequestToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d %v", resp.StatusCode, body)
	}
	jwt, _ := body["value"].(string)
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("value is not a JWT: %q", jwt)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	if claims["iss"] != i.URL || claims["aud"] != "sigstore" || claims["email"] != "ci@bot-core.test" || claims["email_verified"] != true {
		t.Errorf("claims %v", claims)
	}
	if i.ActionsFetches() != 1 {
		t.Errorf("fetches %d", i.ActionsFetches())
	}

	if resp, _ := get(i.ActionsRequestURL+"&audience=sigstore", "bearer wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong request token: HTTP %d", resp.StatusCode)
	}
	if resp, _ := get(i.ActionsRequestURL+"&audience=sigstore", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no request token: HTTP %d", resp.StatusCode)
	}
	if resp, _ := get(i.ActionsRequestURL, "bearer "+i.ActionsRequestToken); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no audience: HTTP %d", resp.StatusCode)
	}

	resp, body = get(i.URL+"/.well-known/openid-configuration", "")
	if resp.StatusCode != http.StatusOK || body["issuer"] != i.URL || body["jwks_uri"] != i.URL+"/keys" {
		t.Errorf("discovery: %d %v", resp.StatusCode, body)
	}
	resp, body = get(i.URL+"/keys", "")
	if keys, _ := body["keys"].([]any); resp.StatusCode != http.StatusOK || len(keys) != 1 {
		t.Errorf("jwks: %d %v", resp.StatusCode, body)
	}
}

// TestFulcioIssuesCertificates is the harness end to end: the real Fulcio
// accepts a token of the issuer and certifies a key for its email.
func TestFulcioIssuesCertificates(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Fulcio")
	}
	s := Start(t)
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM(s.Fulcio.RootPEM)
	if err != nil || len(certs) == 0 {
		t.Fatalf("root: %v %q", err, s.Fulcio.RootPEM)
	}
	// Ask for a certificate the way cosign does (Fulcio's v1 API).
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := cryptoutils.MarshalPublicKeyToPEM(&key.PublicKey)
	sum := sha256.Sum256([]byte("ci@bot-core.test"))
	proof, _ := ecdsa.SignASN1(rand.Reader, key, sum[:])
	body, _ := json.Marshal(map[string]any{"publicKey": map[string]any{"content": pub}, "signedEmailAddress": proof})
	req, _ := http.NewRequest(http.MethodPost, s.Fulcio.URL+"/api/v1/signingCert", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.Issuer.Token(t, TokenClaims{Email: "ci@bot-core.test"}))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	chain, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("signingCert: HTTP %d %s\n%s", resp.StatusCode, chain, s.Fulcio.Logs())
	}
	issued, err := cryptoutils.UnmarshalCertificatesFromPEM(chain)
	if err != nil || len(issued) < 2 {
		t.Fatalf("chain: %v %s", err, chain)
	}
	if len(issued[0].EmailAddresses) != 1 || issued[0].EmailAddresses[0] != "ci@bot-core.test" {
		t.Errorf("certificate names %v", issued[0].EmailAddresses)
	}
	roots := x509.NewCertPool()
	for _, c := range certs {
		roots.AddCert(c)
	}
	inter := x509.NewCertPool()
	for _, c := range issued[1:] {
		inter.AddCert(c)
	}
	if _, err := issued[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
		t.Errorf("the certificate does not chain to RootFile: %v", err)
	}

	r := s.Cosign(t, nil, "version")
	if r.Err != nil || !strings.Contains(r.Stdout+r.Stderr, "v2.") {
		t.Errorf("cosign version: %s", r)
	}
}
