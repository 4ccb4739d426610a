// Package credentials finds the registry credentials of the botcore CLI:
// environment variables, the cloud providers' token flows (ECR, Google
// Artifact Registry and GCR, ACR) and the docker config, in that order. It
// lives with the CLI, not in pipelines/, because the cloud SDKs it needs
// would otherwise be resolved inside the Dagger engine, which never uses
// them.
package credentials

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Environment variables Keychain reads.
const (
	EnvUsername    = "DOCKER_USERNAME"
	EnvPassword    = "DOCKER_PASSWORD"
	EnvGitHubToken = "GITHUB_TOKEN"
	EnvGitHubActor = "GITHUB_ACTOR"
	EnvDockerCfg   = "DOCKER_CONFIG"
)

// Keychain resolves credentials for the registry in info, first match wins:
//
//  1. environment variables, only for info's own registry (so a CI token is
//     never sent to another registry, e.g. one a base image comes from):
//     DOCKER_USERNAME + DOCKER_PASSWORD for any kind; for ghcr.io also
//     GITHUB_TOKEN with GITHUB_ACTOR (or DOCKER_USERNAME) as the user;
//  2. the cloud provider's token flow for the kind, only when env configures
//     its credentials (so no metadata server is ever waited for);
//  3. the docker config: $DOCKER_CONFIG/config.json when env sets
//     DOCKER_CONFIG, otherwise authn.DefaultKeychain (~/.docker/config.json,
//     then podman's auth file); both honour credsStore and credHelpers.
//
// Anything else is anonymous. env is os.Getenv in the CLI and a fake in tests.
//
// The environment variables, by step:
//
//	step   variable                        meaning
//	-----  ------------------------------  ---------------------------------------------
//	env    DOCKER_USERNAME                 user for the registry (any kind)
//	env    DOCKER_PASSWORD                 password or token; for ACR an ACR token works
//	                                       with its token name as DOCKER_USERNAME
//	env    GITHUB_TOKEN                    ghcr.io only: token used as the password
//	env    GITHUB_ACTOR                    ghcr.io only: user for GITHUB_TOKEN
//	ecr    AWS_ACCESS_KEY_ID               static AWS key id (with the secret below)
//	ecr    AWS_SECRET_ACCESS_KEY           static AWS secret key
//	ecr    AWS_SESSION_TOKEN               optional session token for temporary keys
//	ecr    AWS_PROFILE                     else: a profile of ~/.aws/config (SSO,
//	                                       credential_process, assume-role, ...)
//	ecr    AWS_WEB_IDENTITY_TOKEN_FILE     else: web identity (EKS, CI OIDC) with
//	                                       AWS_ROLE_ARN, read by the SDK itself
//	ecr    AWS_ENDPOINT_URL_ECR            ECR API endpoint override (else
//	       (or AWS_ENDPOINT_URL)           https://api.ecr.<region>.amazonaws.com)
//	                                       -> GetAuthorizationToken in the registry's
//	                                       region; user AWS, password from the token
//	gcr    GOOGLE_OAUTH_ACCESS_TOKEN       access token used as is (gcr and gar)
//	gcr    GOOGLE_APPLICATION_CREDENTIALS  else: a service_account (or gcloud
//	                                       authorized_user) JSON key; the token comes
//	                                       from its token_uri with the cloud-platform
//	                                       scope; user oauth2accesstoken
//	acr    AZURE_CLIENT_ID                 service principal (all three needed)
//	acr    AZURE_CLIENT_SECRET             its client secret
//	acr    AZURE_TENANT_ID                 its tenant
//	acr    AZURE_AUTHORITY_HOST            Entra ID authority (default
//	                                       https://login.microsoftonline.com); the
//	                                       AAD token is exchanged at
//	                                       https://<registry>/oauth2/exchange for a
//	                                       refresh token; user
//	                                       00000000-0000-0000-0000-000000000000
//	config DOCKER_CONFIG                   directory of the docker config.json
//
// Instance roles (EC2/ECS metadata), GCE metadata and Azure managed
// identities are not tried; use the docker credential helpers
// (docker-credential-ecr-login, docker-credential-gcloud,
// docker-credential-acr-env) in the docker config for those.
func Keychain(info registry.Info, env func(string) string) authn.Keychain {
	steps := keychainSteps(info, env)
	chain := make([]authn.Keychain, len(steps))
	for i, s := range steps {
		chain[i] = s.kc
	}
	return authn.NewMultiKeychain(chain...)
}

// Source names the Keychain step that answered.
type Source string

// The Keychain steps.
const (
	SourceEnv          Source = "env"
	SourceCloud        Source = "cloud"
	SourceDockerConfig Source = "docker config"
	SourceAnonymous    Source = "anonymous"
)

type keychainStep struct {
	source Source
	kc     authn.Keychain
}

func keychainSteps(info registry.Info, env func(string) string) []keychainStep {
	steps := []keychainStep{{SourceEnv, envKeychain{info: info, env: env}}}
	if kc := cloudKeychain(info, env); kc != nil {
		steps = append(steps, keychainStep{SourceCloud, kc})
	}
	if dir := env(EnvDockerCfg); dir != "" {
		steps = append(steps, keychainStep{SourceDockerConfig, configDirKeychain{dir: dir}})
	} else {
		steps = append(steps, keychainStep{SourceDockerConfig, authn.DefaultKeychain})
	}
	return steps
}

// ResolveSource walks the same steps as Keychain for info's registry and
// says which one answered, with its authenticator (authn.Anonymous and
// SourceAnonymous when none did). An error is a step that failed, e.g. a
// cloud token request.
func ResolveSource(ctx context.Context, info registry.Info, env func(string) string) (Source, authn.Authenticator, error) {
	reg, err := info.Reg()
	if err != nil {
		return "", nil, err
	}
	for _, s := range keychainSteps(info, env) {
		auth, err := authn.Resolve(ctx, s.kc, reg)
		if err != nil {
			return s.source, nil, err
		}
		if auth != authn.Anonymous {
			return s.source, auth, nil
		}
	}
	return SourceAnonymous, authn.Anonymous, nil
}

// envKeychain answers from environment variables for one registry.
type envKeychain struct {
	info registry.Info
	env  func(string) string
}

func (k envKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	if target.RegistryStr() != k.info.Registry {
		return authn.Anonymous, nil
	}
	user, pass := k.env(EnvUsername), k.env(EnvPassword)
	if user != "" && pass != "" {
		return authn.FromConfig(authn.AuthConfig{Username: user, Password: pass}), nil
	}
	if k.info.Kind == registry.KindGHCR {
		if token := k.env(EnvGitHubToken); token != "" {
			if actor := k.env(EnvGitHubActor); actor != "" {
				user = actor
			}
			if user != "" {
				return authn.FromConfig(authn.AuthConfig{Username: user, Password: token}), nil
			}
		}
	}
	return authn.Anonymous, nil
}

// configDirKeychain reads the docker config in an explicit directory, the
// way authn.DefaultKeychain reads the default one (credential helpers
// included), so a DOCKER_CONFIG given through env is honoured even when the
// process environment differs.
type configDirKeychain struct{ dir string }

func (k configDirKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), target)
}

func (k configDirKeychain) ResolveContext(_ context.Context, target authn.Resource) (authn.Authenticator, error) {
	cf, err := config.Load(k.dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read the docker config in %s: %w", filepath.Join(k.dir, config.ConfigFileName), err)
	}
	var empty types.AuthConfig
	for _, key := range []string{target.String(), target.RegistryStr()} {
		if key == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		cfg, err := cf.GetAuthConfig(key)
		if err != nil {
			return nil, fmt.Errorf("cannot read the credentials for %s from the docker config in %s: %w", key, k.dir, err)
		}
		cfg.ServerAddress = ""
		if cfg == empty {
			continue
		}
		return authn.FromConfig(authn.AuthConfig{
			Username:      cfg.Username,
			Password:      cfg.Password,
			Auth:          cfg.Auth,
			IdentityToken: cfg.IdentityToken,
			RegistryToken: cfg.RegistryToken,
		}), nil
	}
	return authn.Anonymous, nil
}

// ConfigAuthKey is the key under "auths" in a docker config.json for the
// registry, as docker login writes it.
func ConfigAuthKey(info registry.Info) string {
	if info.Registry == registry.DockerHubRegistry {
		return authn.DefaultAuthKey
	}
	return info.Registry
}
