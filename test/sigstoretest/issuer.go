package sigstoretest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Audience is the audience Fulcio accepts (its config's ClientID).
const Audience = "sigstore"

// DefaultEmail is the identity of tokens minted without one.
const DefaultEmail = "release-bot@bot-core.test"

// Issuer is a minimal OpenID Connect provider on 127.0.0.1: discovery,
// JWKS, RS256 ID tokens minted on demand, and an endpoint that answers like
// GitHub Actions' ID-token endpoint.
type Issuer struct {
	// URL is the issuer URL ("http://127.0.0.1:<port>"), the iss claim and
	// what `--certificate-oidc-issuer` must name.
	URL string
	// ActionsRequestURL and ActionsRequestToken are what GitHub Actions puts
	// in ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN:
	// GET ActionsRequestURL + "&audience=sigstore" with
	// "Authorization: bearer <ActionsRequestToken>" returns {"value": <jwt>}
	// for the identity set with SetActionsIdentity. Wrong request tokens get
	// HTTP 401.
	ActionsRequestURL   string
	ActionsRequestToken string

	key *rsa.PrivateKey
	kid string
	srv *httptest.Server

	mu             sync.Mutex
	actionsClaims  TokenClaims
	actionsFetches int
}

// TokenClaims choose what a minted token says. Zero fields get defaults:
// Email DefaultEmail (verified), Subject the email, Audience "sigstore",
// TTL 10 minutes.
type TokenClaims struct {
	Subject  string
	Email    string
	Audience string
	TTL      time.Duration
	// Extra claims, e.g. GitHub's job_workflow_ref.
	Extra map[string]any
}

// NewIssuer starts an issuer on 127.0.0.1; it stops at test cleanup.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	kidSum := sha256.Sum256(key.PublicKey.N.Bytes())
	i := &Issuer{
		key:                 key,
		kid:                 hex.EncodeToString(kidSum[:8]),
		ActionsRequestToken: "actions-request-" + hex.EncodeToString(tok),
	}
	i.srv = httptest.NewServer(http.HandlerFunc(i.serve)) // listens on 127.0.0.1
	t.Cleanup(i.srv.Close)
	i.URL = i.srv.URL
	i.ActionsRequestURL = i.URL + "/actions/id-token?api-version=2.0"
	return i
}

// ActionsEnv is the GitHub Actions environment that makes cosign and
// botcore fetch their identity token from this issuer.
func (i *Issuer) ActionsEnv() map[string]string {
	return map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL":   i.ActionsRequestURL,
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": i.ActionsRequestToken,
	}
}

// SetActionsIdentity sets the claims of the tokens the Actions endpoint
// hands out (the audience comes from the request).
func (i *Issuer) SetActionsIdentity(c TokenClaims) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.actionsClaims = c
}

// ActionsFetches counts the tokens the Actions endpoint handed out.
func (i *Issuer) ActionsFetches() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.actionsFetches
}

// Token mints a signed ID token.
func (i *Issuer) Token(t testing.TB, c TokenClaims) string {
	t.Helper()
	tok, err := i.mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (i *Issuer) mint(c TokenClaims) (string, error) {
	if c.Email == "" && c.Subject == "" {
		c.Email = DefaultEmail
	}
	if c.Subject == "" {
		c.Subject = c.Email
	}
	if c.Audience == "" {
		c.Audience = Audience
	}
	if c.TTL == 0 {
		c.TTL = 10 * time.Minute
	}
	now := time.Now()
	claims := map[string]any{
		"iss": i.URL,
		"sub": c.Subject,
		"aud": c.Audience,
		"iat": now.Add(-5 * time.Second).Unix(),
		"nbf": now.Add(-5 * time.Second).Unix(),
		"exp": now.Add(c.TTL).Unix(),
	}
	if c.Email != "" {
		claims["email"] = c.Email
		claims["email_verified"] = true
	}
	for k, v := range c.Extra {
		claims[k] = v
	}
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": i.kid})
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signed := b64(header) + "." + b64(body)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, i.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signed + "." + b64(sig), nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (i *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer":                                i.URL,
			"jwks_uri":                              i.URL + "/keys",
			"authorization_endpoint":                i.URL + "/auth",
			"token_endpoint":                        i.URL + "/token",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"claims_supported":                      []string{"sub", "aud", "exp", "iat", "iss", "email", "email_verified"},
		})
	case "/keys":
		writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "alg": "RS256", "use": "sig", "kid": i.kid,
			"n": b64(i.key.PublicKey.N.Bytes()),
			"e": b64(big.NewInt(int64(i.key.PublicKey.E)).Bytes()),
		}}})
	case "/actions/id-token":
		i.serveActions(w, r)
	default:
		http.NotFound(w, r)
	}
}

// serveActions answers as GitHub's ID-token endpoint does.
func (i *Issuer) serveActions(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"message": "method not allowed"})
		return
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") || subtle.ConstantTimeCompare([]byte(token), []byte(i.ActionsRequestToken)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials"})
		return
	}
	aud := r.URL.Query().Get("audience")
	if aud == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "audience is required"})
		return
	}
	i.mu.Lock()
	c := i.actionsClaims
	i.actionsFetches++
	i.mu.Unlock()
	c.Audience = aud
	jwt, err := i.mint(c)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"message": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": 1, "value": jwt})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
