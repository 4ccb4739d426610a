package pkgindex

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultNpmRegistry is where npm installs from when nothing says otherwise.
const DefaultNpmRegistry = "https://registry.npmjs.org/"

// Npm is the registry npm ci installs from (npm's registry setting) and
// whether a token for it is given.
type Npm struct {
	Registry  string
	WithToken bool
}

// Check returns one error naming the flag when the registry is not usable.
func (n Npm) Check() error {
	if n.Registry == "" {
		return nil
	}
	if _, err := parse(n.Registry, "--npm-token"); err != nil {
		return fmt.Errorf("--npm-registry %s: %w", redact(n.Registry), err)
	}
	return nil
}

// Env is npm's configuration as environment variables: npm reads
// npm_config_<key>, over the project's .npmrc. Lockfile URLs of the public
// registry are then fetched from this one (npm's replace-registry-host).
func (n Npm) Env() map[string]string {
	if n.Registry == "" {
		return map[string]string{}
	}
	return map[string]string{"npm_config_registry": n.Registry}
}

// AuthKey is the .npmrc key prefix npm looks its token up under for the
// registry: the URL without its scheme, ending in a slash
// ("//npm.example.com/repository/npm/").
func (n Npm) AuthKey() (string, error) {
	reg := n.Registry
	if reg == "" {
		reg = DefaultNpmRegistry
	}
	u, err := parse(reg, "--npm-token")
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(u.Host+u.Path, "\n\r=") {
		return "", errors.New("--npm-registry: a registry URL with '=' or a line break cannot name a token")
	}
	return "//" + u.Host + strings.TrimSuffix(u.Path, "/") + "/", nil
}
