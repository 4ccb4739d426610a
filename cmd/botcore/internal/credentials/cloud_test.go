package credentials

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/bot-core/delivery/pipelines/registry/registrytest"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func mustRegistry(t *testing.T, host string) name.Registry {
	t.Helper()
	reg, err := name.NewRegistry(host)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// pushWithKeychain pushes a small image to a basic-auth test registry whose
// only valid credentials are user/pass, authenticating through Keychain
// for an info of kind, so the registry client itself proves what the cloud
// step handed it.
func pushWithKeychain(t *testing.T, kind registry.Kind, user, pass string, env map[string]string) {
	t.Helper()
	srv := registrytest.NewBasic(t)
	srv.User, srv.Password = user, pass
	info := registry.Info{Kind: kind, Registry: srv.Host, Repository: "bot", Region: "eu-west-1", Insecure: true}
	repo, err := info.Repo("svc")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(repo.Tag("v1"), img, remote.WithAuthFromKeychain(Keychain(info, mapEnv(env)))); err != nil {
		t.Fatalf("push with the %s keychain: %v", kind, err)
	}
}

func TestECRKeychain(t *testing.T) {
	var calls atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		auth := r.Header.Get("Authorization")
		switch {
		case r.Method != http.MethodPost:
			t.Errorf("method %s", r.Method)
		case r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken":
			t.Errorf("X-Amz-Target %q", r.Header.Get("X-Amz-Target"))
		case r.Header.Get("Content-Type") != "application/x-amz-json-1.1":
			t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
		case !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") ||
			!strings.Contains(auth, "/eu-west-1/ecr/aws4_request") ||
			!strings.Contains(auth, "SignedHeaders=") || !strings.Contains(auth, "Signature="):
			t.Errorf("not SigV4 for ecr in eu-west-1: %q", auth)
		case r.Header.Get("X-Amz-Date") == "":
			t.Error("no X-Amz-Date")
		case r.Header.Get("X-Amz-Security-Token") != "session-tok":
			t.Errorf("session token %q", r.Header.Get("X-Amz-Security-Token"))
		case strings.TrimSpace(string(body)) != "{}":
			t.Errorf("body %q", body)
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		token := base64.StdEncoding.EncodeToString([]byte("AWS:ecr-pass-123"))
		_, _ = io.WriteString(w, `{"authorizationData":[{"authorizationToken":"`+token+`","expiresAt":1.9e9,"proxyEndpoint":"https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"}]}`)
	}))
	defer api.Close()
	env := map[string]string{
		"AWS_ACCESS_KEY_ID":     "AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY": "secret-example",
		"AWS_SESSION_TOKEN":     "session-tok",
		"AWS_ENDPOINT_URL_ECR":  api.URL,
	}
	info, err := registry.Detect("123456789012.dkr.ecr.eu-west-1.amazonaws.com/bot-core")
	if err != nil {
		t.Fatal(err)
	}
	kc := Keychain(info, mapEnv(env))
	if got := resolved(t, kc, mustRegistry(t, info.Registry)); got != "AWS:ecr-pass-123" {
		t.Errorf("ECR credentials: %q", got)
	}
	if got := resolved(t, kc, mustRegistry(t, "ghcr.io")); got != "anonymous" {
		t.Errorf("other registry: %q", got)
	}
	_ = resolved(t, kc, mustRegistry(t, info.Registry))
	if n := calls.Load(); n != 1 {
		t.Errorf("%d GetAuthorizationToken calls, want 1 (cached)", n)
	}
	src, _, err := ResolveSource(context.Background(), info, mapEnv(env))
	if err != nil || src != SourceCloud {
		t.Errorf("ResolveSource = %q, %v", src, err)
	}
	// DOCKER_USERNAME/DOCKER_PASSWORD still win.
	env2 := map[string]string{"DOCKER_USERNAME": "AWS", "DOCKER_PASSWORD": "given"}
	for k, v := range env {
		env2[k] = v
	}
	if src, _, _ := ResolveSource(context.Background(), info, mapEnv(env2)); src != SourceEnv {
		t.Errorf("with DOCKER_* set the source is %q", src)
	}
	pushWithKeychain(t, registry.KindECR, "AWS", "ecr-pass-123", env)

	// No AWS credentials in env: no cloud step at all.
	if kc := cloudKeychain(info, mapEnv(map[string]string{})); kc != nil {
		t.Error("cloud step without AWS credentials")
	}
}

func TestECRKeychainError(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`)
	}))
	defer api.Close()
	info, _ := registry.Detect("123456789012.dkr.ecr.eu-west-1.amazonaws.com/bot-core")
	env := map[string]string{"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "bad", "AWS_ENDPOINT_URL": api.URL}
	_, err := Keychain(info, mapEnv(env)).Resolve(mustRegistry(t, info.Registry))
	if err == nil || !strings.Contains(err.Error(), "cannot get an ECR token for 123456789012.dkr.ecr.eu-west-1.amazonaws.com") ||
		!strings.Contains(err.Error(), "UnrecognizedClientException") {
		t.Errorf("error: %v", err)
	}
}

// serviceAccountKey writes a service-account JSON key with a fresh RSA key
// whose token_uri is tokenURI.
func serviceAccountKey(t *testing.T, tokenURI string) (string, *rsa.PublicKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sa := map[string]string{
		"type":           "service_account",
		"project_id":     "my-project",
		"private_key_id": "key-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "pusher@my-project.iam.gserviceaccount.com",
		"client_id":      "1234",
		"token_uri":      tokenURI,
	}
	b, _ := json.Marshal(sa)
	path := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, &key.PublicKey
}

// checkJWTBearer verifies the JWT-bearer grant of a service-account token
// request: the RS256 signature with pub and the claims.
func checkJWTBearer(t *testing.T, r *http.Request, pub *rsa.PublicKey, aud string) {
	t.Helper()
	if err := r.ParseForm(); err != nil {
		t.Fatal(err)
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		t.Errorf("grant_type %q", g)
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		t.Fatalf("assertion is not a JWT: %q", r.PostForm.Get("assertion"))
	}
	var header struct{ Alg, Kid string }
	var claims struct {
		Iss, Scope, Aud string
		Exp, Iat        int64
	}
	for i, v := range []any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	if header.Alg != "RS256" || header.Kid != "key-1" {
		t.Errorf("JWT header %+v", header)
	}
	if claims.Iss != "pusher@my-project.iam.gserviceaccount.com" || claims.Aud != aud ||
		claims.Scope != googleScope || claims.Exp <= claims.Iat {
		t.Errorf("JWT claims %+v", claims)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("JWT signature: %v", err)
	}
}

func TestGoogleKeychain(t *testing.T) {
	var pub *rsa.PublicKey
	var calls atomic.Int32
	var tokenURL string
	tok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Method != http.MethodPost || r.URL.Path != "/token" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		checkJWTBearer(t, r, pub, tokenURL)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"ya29.test-token","token_type":"Bearer","expires_in":3600}`)
	}))
	defer tok.Close()
	tokenURL = tok.URL + "/token"
	path, key := serviceAccountKey(t, tokenURL)
	pub = key
	env := map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": path}

	for _, ref := range []string{"europe-docker.pkg.dev/my-project/bot", "eu.gcr.io/my-project"} {
		info, err := registry.Detect(ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := resolved(t, Keychain(info, mapEnv(env)), mustRegistry(t, info.Registry)); got != "oauth2accesstoken:ya29.test-token" {
			t.Errorf("%s: %q", ref, got)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
	pushWithKeychain(t, registry.KindGAR, "oauth2accesstoken", "ya29.test-token", env)

	// A token given directly needs no request.
	info, _ := registry.Detect("gcr.io/my-project")
	direct := map[string]string{"GOOGLE_OAUTH_ACCESS_TOKEN": "ya29.direct", "GOOGLE_APPLICATION_CREDENTIALS": path}
	if got := resolved(t, Keychain(info, mapEnv(direct)), mustRegistry(t, "gcr.io")); got != "oauth2accesstoken:ya29.direct" {
		t.Errorf("direct token: %q", got)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d token requests, want 3", n)
	}

	// Key types that run programs or fetch URLs are refused.
	ext := filepath.Join(t.TempDir(), "ext.json")
	_ = os.WriteFile(ext, []byte(`{"type":"external_account","credential_source":{"executable":{"command":"/bin/true"}}}`), 0o600)
	_, err := Keychain(info, mapEnv(map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": ext})).Resolve(mustRegistry(t, "gcr.io"))
	if err == nil || !strings.Contains(err.Error(), `its type is "external_account"`) {
		t.Errorf("external_account: %v", err)
	}
}

func TestACRKeychain(t *testing.T) {
	var aadCalls, exCalls atomic.Int32
	var exchangedFor string
	aad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		aadCalls.Add(1)
		_ = r.ParseForm()
		f := r.PostForm
		if r.Method != http.MethodPost || r.URL.Path != "/tenant-1/oauth2/v2.0/token" ||
			f.Get("grant_type") != "client_credentials" || f.Get("client_id") != "app-id" ||
			f.Get("scope") != "https://containerregistry.azure.net/.default" {
			t.Errorf("AAD request %s %s %v", r.Method, r.URL.Path, f)
		}
		w.Header().Set("Content-Type", "application/json")
		if f.Get("client_secret") != "app-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`)
			return
		}
		_, _ = io.WriteString(w, `{"token_type":"Bearer","expires_in":3599,"access_token":"aad-access-token"}`)
	}))
	defer aad.Close()
	ex := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exCalls.Add(1)
		_ = r.ParseForm()
		f := r.PostForm
		if r.Method != http.MethodPost || r.URL.Path != "/oauth2/exchange" ||
			f.Get("grant_type") != "access_token" || f.Get("service") != exchangedFor ||
			f.Get("tenant") != "tenant-1" || f.Get("access_token") != "aad-access-token" {
			t.Errorf("exchange request %s %s %v", r.Method, r.URL.Path, f)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"refresh_token":"acr-refresh-token"}`)
	}))
	defer ex.Close()
	old := acrExchangeURL
	acrExchangeURL = func(reg string) string { exchangedFor = reg; return ex.URL + "/oauth2/exchange" }
	defer func() { acrExchangeURL = old }()

	env := map[string]string{
		"AZURE_CLIENT_ID":      "app-id",
		"AZURE_CLIENT_SECRET":  "app-secret",
		"AZURE_TENANT_ID":      "tenant-1",
		"AZURE_AUTHORITY_HOST": aad.URL + "/",
	}
	info, err := registry.Detect("acme.azurecr.io/bot-core")
	if err != nil {
		t.Fatal(err)
	}
	if got := resolved(t, Keychain(info, mapEnv(env)), mustRegistry(t, info.Registry)); got != ACRUser+":acr-refresh-token" {
		t.Errorf("ACR credentials: %q", got)
	}
	if exchangedFor != "acme.azurecr.io" || aadCalls.Load() != 1 || exCalls.Load() != 1 {
		t.Errorf("exchange URL for %q, %d AAD and %d exchange calls", exchangedFor, aadCalls.Load(), exCalls.Load())
	}

	env["AZURE_CLIENT_SECRET"] = "wrong"
	_, err = Keychain(info, mapEnv(env)).Resolve(mustRegistry(t, info.Registry))
	if err == nil || !strings.Contains(err.Error(), "cannot get an Azure AD token for acme.azurecr.io: HTTP 401 from "+strings.TrimPrefix(aad.URL, "http://")+": invalid_client AADSTS7000215") ||
		!strings.HasSuffix(err.Error(), "so check AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID") {
		t.Errorf("wrong secret: %v", err)
	}
	if exCalls.Load() != 1 {
		t.Error("exchanged after a failed AAD request")
	}

	// The registry client gets the refresh token.
	env["AZURE_CLIENT_SECRET"] = "app-secret"
	pushWithKeychain(t, registry.KindACR, ACRUser, "acr-refresh-token", env)

	if kc := cloudKeychain(info, mapEnv(map[string]string{"AZURE_CLIENT_ID": "x"})); kc != nil {
		t.Error("cloud step without a complete service principal")
	}
}

func TestACRKeychainAuthorityDown(t *testing.T) {
	// A proxy or outage answers with a page, not an OAuth error: the error
	// stays one line and still ends with what to check.
	aad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>\n<body>502 Bad Gateway</body>\n</html>\n")
	}))
	defer aad.Close()
	ex := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("exchanged after a failed AAD request")
	}))
	defer ex.Close()
	old := acrExchangeURL
	acrExchangeURL = func(string) string { return ex.URL + "/oauth2/exchange" }
	defer func() { acrExchangeURL = old }()
	info, err := registry.Detect("acme.azurecr.io/bot-core")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"AZURE_CLIENT_ID":      "app-id",
		"AZURE_CLIENT_SECRET":  "app-secret",
		"AZURE_TENANT_ID":      "tenant-1",
		"AZURE_AUTHORITY_HOST": aad.URL,
	}
	_, err = Keychain(info, mapEnv(env)).Resolve(mustRegistry(t, info.Registry))
	if err == nil || !strings.Contains(err.Error(), "HTTP 502 from "+strings.TrimPrefix(aad.URL, "http://")+": <html>") ||
		strings.Contains(err.Error(), "\n") || !strings.HasSuffix(err.Error(), "AZURE_TENANT_ID") {
		t.Errorf("authority down: %q", err)
	}
}
