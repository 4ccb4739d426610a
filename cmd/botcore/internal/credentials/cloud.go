package credentials

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
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/google"
)

// Environment variables of the cloud token flows (see the table on Keychain).
const (
	EnvAWSAccessKeyID      = "AWS_ACCESS_KEY_ID"
	EnvAWSSecretAccessKey  = "AWS_SECRET_ACCESS_KEY"
	EnvAWSSessionToken     = "AWS_SESSION_TOKEN"
	EnvAWSProfile          = "AWS_PROFILE"
	EnvAWSWebIdentityToken = "AWS_WEB_IDENTITY_TOKEN_FILE"
	EnvAWSEndpointECR      = "AWS_ENDPOINT_URL_ECR"
	EnvAWSEndpoint         = "AWS_ENDPOINT_URL"

	EnvGoogleAccessToken = "GOOGLE_OAUTH_ACCESS_TOKEN"
	EnvGoogleCredentials = "GOOGLE_APPLICATION_CREDENTIALS"

	EnvAzureClientID      = "AZURE_CLIENT_ID"
	EnvAzureClientSecret  = "AZURE_CLIENT_SECRET"
	EnvAzureTenantID      = "AZURE_TENANT_ID"
	EnvAzureAuthorityHost = "AZURE_AUTHORITY_HOST"
)

// Fixed user names the cloud registries expect with their tokens.
const (
	ECRUser    = "AWS"
	GoogleUser = "oauth2accesstoken"
	ACRUser    = "00000000-0000-0000-0000-000000000000"
)

const (
	googleScope          = "https://www.googleapis.com/auth/cloud-platform"
	azureDefaultAuthHost = "https://login.microsoftonline.com"
	acrScope             = "https://containerregistry.azure.net/.default"
	cloudHTTPTimeout     = 30 * time.Second
)

// acrExchangeURL is where an Azure AD token is exchanged for an ACR refresh
// token; tests point it at a local server.
var acrExchangeURL = func(host string) string { return "https://" + host + "/oauth2/exchange" }

// cloudKeychain returns the cloud provider's token flow for info's kind, or
// nil ("no cloud step") when the kind has none or env configures none of
// its credentials. Only configured flows run, so a machine without cloud
// credentials never waits for a metadata server.
func cloudKeychain(info registry.Info, env func(string) string) authn.Keychain {
	var fetch func(ctx context.Context) (user, pass string, err error)
	switch info.Kind {
	case registry.KindECR:
		if !ecrConfigured(env) {
			return nil
		}
		fetch = func(ctx context.Context) (string, string, error) { return ecrToken(ctx, info, env) }
	case registry.KindGCR, registry.KindGAR:
		if env(EnvGoogleAccessToken) == "" && env(EnvGoogleCredentials) == "" {
			return nil
		}
		fetch = func(ctx context.Context) (string, string, error) { return googleToken(ctx, env) }
	case registry.KindACR:
		if env(EnvAzureClientID) == "" || env(EnvAzureClientSecret) == "" || env(EnvAzureTenantID) == "" {
			return nil
		}
		exchange := acrExchangeURL(info.Registry)
		fetch = func(ctx context.Context) (string, string, error) { return acrToken(ctx, info, env, exchange) }
	default:
		return nil
	}
	return &tokenKeychain{registry: info.Registry, fetch: fetch}
}

// tokenKeychain answers info's registry with the credentials fetch returns,
// fetching once per keychain; other registries get anonymous.
type tokenKeychain struct {
	registry string
	fetch    func(ctx context.Context) (user, pass string, err error)

	mu     sync.Mutex
	cached authn.Authenticator
}

func (k *tokenKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), target)
}

func (k *tokenKeychain) ResolveContext(ctx context.Context, target authn.Resource) (authn.Authenticator, error) {
	if target.RegistryStr() != k.registry {
		return authn.Anonymous, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cached != nil {
		return k.cached, nil
	}
	user, pass, err := k.fetch(ctx)
	if err != nil {
		return nil, err
	}
	k.cached = authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})
	return k.cached, nil
}

// ecrConfigured reports whether env names AWS credentials: static keys, a
// profile or a web identity (EKS/GitHub OIDC) token file.
func ecrConfigured(env func(string) string) bool {
	return (env(EnvAWSAccessKeyID) != "" && env(EnvAWSSecretAccessKey) != "") ||
		env(EnvAWSProfile) != "" || env(EnvAWSWebIdentityToken) != ""
}

// ecrToken calls ECR GetAuthorizationToken in the registry's region and
// splits the base64 "AWS:<password>" token it returns.
func ecrToken(ctx context.Context, info registry.Info, env func(string) string) (string, string, error) {
	fail := func(format string, args ...any) (string, string, error) {
		return "", "", fmt.Errorf("cannot get an ECR token for %s: %s", info.Registry, fmt.Sprintf(format, args...))
	}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(info.Region),
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(cloudHTTPTimeout)),
	}
	if id, secret := env(EnvAWSAccessKeyID), env(EnvAWSSecretAccessKey); id != "" && secret != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(awscreds.NewStaticCredentialsProvider(id, secret, env(EnvAWSSessionToken))))
	} else if p := env(EnvAWSProfile); p != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(p))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fail("loading the AWS configuration failed (%v), so check AWS_PROFILE and ~/.aws/config", err)
	}
	endpoint := env(EnvAWSEndpointECR)
	if endpoint == "" {
		endpoint = env(EnvAWSEndpoint)
	}
	client := ecr.NewFromConfig(cfg, func(o *ecr.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	out, err := client.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return fail("GetAuthorizationToken failed (%v), so check the AWS credentials and that they allow ecr:GetAuthorizationToken", err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return fail("GetAuthorizationToken returned no token")
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.AuthorizationData[0].AuthorizationToken))
	if err != nil {
		return fail("the token is not base64 (%v)", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || pass == "" {
		return fail("the token is not USER:PASSWORD")
	}
	return user, pass, nil
}

// googleToken returns oauth2accesstoken and an access token, given directly
// or obtained with a service-account (or gcloud user) key file.
func googleToken(ctx context.Context, env func(string) string) (string, string, error) {
	if tok := env(EnvGoogleAccessToken); tok != "" {
		return GoogleUser, tok, nil
	}
	path := env(EnvGoogleCredentials)
	fail := func(format string, args ...any) (string, string, error) {
		return "", "", fmt.Errorf("cannot get a Google access token from %s=%s: %s", EnvGoogleCredentials, path, fmt.Sprintf(format, args...))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fail("%v", err)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return fail("the file is not JSON (%v)", err)
	}
	// Only key types whose flow is a plain token request are accepted; an
	// external_account file can make the library run programs or fetch URLs.
	if head.Type != "service_account" && head.Type != "authorized_user" {
		return fail("its type is %q, but only service_account and authorized_user keys are supported; set %s to an access token instead", head.Type, EnvGoogleAccessToken)
	}
	ctx, cancel := context.WithTimeout(ctx, cloudHTTPTimeout)
	defer cancel()
	creds, err := google.CredentialsFromJSONWithParams(ctx, data, google.CredentialsParams{Scopes: []string{googleScope}})
	if err != nil {
		return fail("%v", err)
	}
	tok, err := creds.TokenSource.Token()
	if err != nil {
		return fail("the token request failed (%v), so check that the key is valid and not revoked", err)
	}
	return GoogleUser, tok.AccessToken, nil
}

// acrToken gets an Entra ID (Azure AD) token for the service principal in
// env and exchanges it at exchangeURL for an ACR refresh token.
func acrToken(ctx context.Context, info registry.Info, env func(string) string, exchangeURL string) (string, string, error) {
	tenant := env(EnvAzureTenantID)
	authority := strings.TrimRight(env(EnvAzureAuthorityHost), "/")
	if authority == "" {
		authority = azureDefaultAuthHost
	}
	client := &http.Client{Timeout: cloudHTTPTimeout}

	entra := clientcredentials.Config{
		ClientID:     env(EnvAzureClientID),
		ClientSecret: env(EnvAzureClientSecret),
		TokenURL:     authority + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/token",
		Scopes:       []string{acrScope},
		// Entra ID reads the secret from the form; auto-detection would try
		// a Basic header first and repeat a rejected request.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	aad, err := entra.Token(context.WithValue(ctx, oauth2.HTTPClient, client))
	if err != nil {
		return "", "", fmt.Errorf("cannot get an Azure AD token for %s: %s, so check AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID", info.Registry, tokenError(err))
	}

	var acr struct {
		RefreshToken string `json:"refresh_token"`
	}
	err = postForm(ctx, client, exchangeURL, url.Values{
		"grant_type":   {"access_token"},
		"service":      {info.Registry},
		"tenant":       {tenant},
		"access_token": {aad.AccessToken},
	}, &acr)
	if err == nil && acr.RefreshToken == "" {
		err = errors.New("the answer has no refresh_token")
	}
	if err != nil {
		return "", "", fmt.Errorf("cannot exchange the Azure AD token for an ACR token at %s: %v, so check that the service principal has a role (e.g. AcrPush) on the registry", exchangeURL, err)
	}
	return ACRUser, acr.RefreshToken, nil
}

// tokenError words a failed token request like a failed exchange, status
// and host included; for an answer without an OAuth error code oauth2's own
// text would span lines and carry the whole body.
func tokenError(err error) string {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		return err.Error()
	}
	return httpError(re.Response, re.Body).Error()
}

// postForm POSTs form to u and decodes a 200 JSON answer into out.
func postForm(ctx context.Context, client *http.Client, u string, form url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return httpError(resp, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("the answer from %s is not JSON: %v", req.URL.Host, err)
	}
	return nil
}

// httpError describes an error answer by its status and the OAuth error
// fields of its body (error, error_description), else the start of the body.
func httpError(resp *http.Response, body []byte) error {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &e)
	msg := strings.TrimSpace(e.Error + " " + e.Description)
	if msg == "" {
		// A page from a proxy or an outage: its lines joined, so the error
		// stays one line.
		msg = strings.Join(strings.Fields(string(body)), " ")
		if len(msg) > 200 {
			msg = msg[:200]
		}
	}
	host := "the server"
	if resp.Request != nil && resp.Request.URL != nil {
		host = resp.Request.URL.Host
	}
	return fmt.Errorf("HTTP %d from %s: %s", resp.StatusCode, host, msg)
}
