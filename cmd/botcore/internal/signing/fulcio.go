package signing

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/fulcio/pkg/api"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"
)

// Certificate is what Fulcio issued for an ephemeral key.
type Certificate struct {
	CertPEM  []byte
	ChainPEM []byte
	SCT      []byte // detached SCT, usually empty (embedded in the cert)
	Cert     *x509.Certificate
	// Identity is the certificate's subject alternative name (an email, or
	// a URI such as a GitHub workflow), Issuer the OIDC issuer extension:
	// the pair `verify --certificate-identity/--certificate-oidc-issuer`
	// checks.
	Identity string
	Issuer   string
}

// requestCertificate asks Fulcio (its v1 API, the one cosign v2 uses) for a
// code-signing certificate binding sv's public key to the token's identity.
// It is cosign's fulcio.NewSigner without its token lookup, which would
// treat a token it cannot parse as a file name and print it in the error.
func requestCertificate(ctx context.Context, fulcioURL string, tok Token, sv signature.SignerVerifier) (*Certificate, error) {
	base, err := url.Parse(fulcioURL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, &URLError{Service: Fulcio, URL: fulcioURL}
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, err
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, err
	}
	proof, err := sv.SignMessage(strings.NewReader(tok.Claims.Challenge()), sigopts.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("signing the proof of possession for Fulcio: %w", err)
	}
	body, err := json.Marshal(api.CertificateRequest{PublicKey: api.Key{Content: pubPEM}, SignedEmailAddress: proof})
	if err != nil {
		return nil, err
	}
	endpoint := base.JoinPath("/api/v1/signingCert")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok.Raw)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "botcore")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, &FulcioError{URL: fulcioURL, Msg: fmt.Sprintf("cannot reach Fulcio at %s: %v", fulcioURL, unwrapURLError(err)), Err: err}
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading Fulcio's answer from %s: %w", fulcioURL, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, fulcioError(fulcioURL, tok, resp.StatusCode, respBody)
	}
	sct, err := base64.StdEncoding.DecodeString(resp.Header.Get("SCT"))
	if err != nil {
		return nil, fmt.Errorf("fulcio at %s sent an SCT header that is not base64", fulcioURL)
	}
	block, chainPEM := pem.Decode(respBody)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, &FulcioError{URL: fulcioURL, Status: resp.StatusCode, Msg: fmt.Sprintf("%s answered without a PEM certificate, so it is not a Fulcio", fulcioURL)}
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("fulcio at %s issued an unreadable certificate: %w", fulcioURL, err)
	}
	c := &Certificate{CertPEM: pem.EncodeToMemory(block), ChainPEM: chainPEM, SCT: sct, Cert: cert}
	c.Identity, c.Issuer = CertIdentity(cert)
	return c, nil
}

// fulcioError turns a refusal into one sentence. Fulcio's messages name the
// problem ("There was an error processing the identity token") but not the
// usual causes, which are the token's issuer and audience.
func fulcioError(fulcioURL string, tok Token, status int, body []byte) error {
	msg := strings.TrimSpace(string(body))
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		msg = e.Message
	}
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	msg = strings.ReplaceAll(msg, tok.Raw, "<token>")
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusBadRequest:
		return fmt.Errorf("fulcio at %s refused the %s (HTTP %d: %s): check that Fulcio trusts its issuer %s and that its audience is %q", fulcioURL, tok, status, msg, tok.Claims.Issuer, Audience)
	}
	return &FulcioError{URL: fulcioURL, Status: status, Msg: fmt.Sprintf("fulcio at %s failed with HTTP %d (%s)", fulcioURL, status, msg)}
}

// CertIdentity returns a Fulcio certificate's identity (first subject
// alternative name) and OIDC issuer.
func CertIdentity(cert *x509.Certificate) (identity, issuer string) {
	if sans := cryptoutils.GetSubjectAlternateNames(cert); len(sans) > 0 {
		identity = sans[0]
	}
	ce := cosign.CertExtensions{Cert: cert}
	return identity, ce.GetIssuer()
}

// verifySCT checks the certificate's signed certificate timestamp against
// the CT log keys cosign trusts (TUF, or SIGSTORE_CT_LOG_PUBLIC_KEY_FILE).
func verifySCT(ctx context.Context, fulcioURL string, c *Certificate) error {
	pubs, err := cosign.GetCTLogPubs(ctx)
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrCTLogKeys, err)
	}
	if err := cosign.VerifySCT(ctx, c.CertPEM, c.ChainPEM, c.SCT, pubs); err != nil {
		return fmt.Errorf("the certificate from Fulcio at %s has %w (%v)", fulcioURL, ErrNoSCT, err)
	}
	return nil
}
