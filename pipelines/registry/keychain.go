package registry

import (
	"context"
	"fmt"
	"path/filepath"

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
//  2. the cloud provider's token flow for the kind (see cloudKeychain: not
//     implemented yet, so this step never answers);
//  3. the docker config: $DOCKER_CONFIG/config.json when env sets
//     DOCKER_CONFIG, otherwise authn.DefaultKeychain (~/.docker/config.json,
//     then podman's auth file); both honour credsStore and credHelpers.
//
// Anything else is anonymous. env is os.Getenv in the CLI and a fake in tests.
func Keychain(info Info, env func(string) string) authn.Keychain {
	chain := []authn.Keychain{envKeychain{info: info, env: env}}
	if kc := cloudKeychain(info, env); kc != nil {
		chain = append(chain, kc)
	}
	if dir := env(EnvDockerCfg); dir != "" {
		chain = append(chain, configDirKeychain{dir: dir})
	} else {
		chain = append(chain, authn.DefaultKeychain)
	}
	return authn.NewMultiKeychain(chain...)
}

// cloudKeychain is the seam for the cloud registries' own token flows. None
// is implemented yet; what is missing per kind:
//
//   - ecr: exchanging AWS credentials (env, profile, instance role) for a
//     12-hour token through ECR GetAuthorizationToken (aws-sdk-go-v2, or
//     github.com/awslabs/amazon-ecr-credential-helper's library);
//   - gcr, gar: an OAuth2 access token from Application Default Credentials
//     or gcloud (go-containerregistry's pkg/v1/google.Keychain, which pulls
//     in golang.org/x/oauth2/google);
//   - acr: exchanging an Entra ID (Azure AD) token for an ACR refresh token
//     at https://<registry>.azurecr.io/oauth2/exchange (azidentity).
//
// Until then these registries work with DOCKER_USERNAME/DOCKER_PASSWORD
// (e.g. AWS as user and `aws ecr get-login-password` as password,
// oauth2accesstoken and `gcloud auth print-access-token`, or an ACR token)
// or with their docker credential helpers (docker-credential-ecr-login,
// docker-credential-gcloud, docker-credential-acr-env) configured in the
// docker config. Returning nil means "no cloud step".
func cloudKeychain(info Info, _ func(string) string) authn.Keychain {
	switch info.Kind {
	case KindECR, KindGCR, KindGAR, KindACR:
		return nil // not implemented yet, see above
	}
	return nil
}

// envKeychain answers from environment variables for one registry.
type envKeychain struct {
	info Info
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
	if k.info.Kind == KindGHCR {
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
func ConfigAuthKey(info Info) string {
	if info.Registry == DockerHubRegistry {
		return authn.DefaultAuthKey
	}
	return info.Registry
}
