package credentials

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// writeDockerConfig writes a config.json with basic auths entries.
func writeDockerConfig(t *testing.T, entries map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	var parts []string
	for key, userPass := range entries {
		parts = append(parts, `"`+key+`": {"auth": "`+base64.StdEncoding.EncodeToString([]byte(userPass))+`"}`)
	}
	cfg := `{"auths": {` + strings.Join(parts, ",") + `}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// resolved returns "user:pass" of what kc answers for target, or "anonymous".
func resolved(t *testing.T, kc authn.Keychain, target authn.Resource) string {
	t.Helper()
	auth, err := kc.Resolve(target)
	if err != nil {
		t.Fatalf("Resolve(%s): %v", target, err)
	}
	if auth == authn.Anonymous {
		return "anonymous"
	}
	cfg, err := authn.Authorization(context.Background(), auth)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth != "" && cfg.Username == "" {
		b, err := base64.StdEncoding.DecodeString(cfg.Auth)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	return cfg.Username + ":" + cfg.Password
}

func TestKeychainPrecedence(t *testing.T) {
	cfgDir := writeDockerConfig(t, map[string]string{
		"ghcr.io":                     "cfg-user:cfg-pass",
		"https://index.docker.io/v1/": "hub-user:hub-pass",
		"harbor.acme.internal:8443":   "harbor-user:harbor-pass",
	})
	ghcr, _ := registry.Detect("ghcr.io/acme/bot-core")
	hub, _ := registry.Detect("docker.io/acme")
	harbor, _ := registry.Detect("harbor.acme.internal:8443/bot")
	ghcrReg, _ := name.NewRegistry("ghcr.io")
	ghcrRepo, _ := name.NewRepository("ghcr.io/acme/bot-core/rust-core-engine")
	hubReg, _ := name.NewRegistry("index.docker.io")
	harborReg, _ := name.NewRegistry("harbor.acme.internal:8443")
	otherReg, _ := name.NewRegistry("quay.io")

	tests := []struct {
		name   string
		info   registry.Info
		env    map[string]string
		target authn.Resource
		want   string
	}{
		{"docker env wins over token and config", ghcr, map[string]string{
			"DOCKER_USERNAME": "env-user", "DOCKER_PASSWORD": "env-pass", "GITHUB_TOKEN": "gh-token", "GITHUB_ACTOR": "octo", "DOCKER_CONFIG": cfgDir,
		}, ghcrReg, "env-user:env-pass"},
		{"github token with actor", ghcr, map[string]string{
			"GITHUB_TOKEN": "gh-token", "GITHUB_ACTOR": "octo", "DOCKER_CONFIG": cfgDir,
		}, ghcrRepo, "octo:gh-token"},
		{"github token with docker username", ghcr, map[string]string{
			"GITHUB_TOKEN": "gh-token", "DOCKER_USERNAME": "dock", "DOCKER_CONFIG": cfgDir,
		}, ghcrReg, "dock:gh-token"},
		{"github token without a user falls through to the config", ghcr, map[string]string{
			"GITHUB_TOKEN": "gh-token", "DOCKER_CONFIG": cfgDir,
		}, ghcrReg, "cfg-user:cfg-pass"},
		{"half docker env falls through to the config", ghcr, map[string]string{
			"DOCKER_USERNAME": "env-user", "DOCKER_CONFIG": cfgDir,
		}, ghcrReg, "cfg-user:cfg-pass"},
		{"config only", ghcr, map[string]string{"DOCKER_CONFIG": cfgDir}, ghcrRepo, "cfg-user:cfg-pass"},
		{"github token is only for ghcr", harbor, map[string]string{
			"GITHUB_TOKEN": "gh-token", "GITHUB_ACTOR": "octo", "DOCKER_CONFIG": cfgDir,
		}, harborReg, "harbor-user:harbor-pass"},
		{"docker env for any kind", harbor, map[string]string{
			"DOCKER_USERNAME": "env-user", "DOCKER_PASSWORD": "env-pass", "DOCKER_CONFIG": cfgDir,
		}, harborReg, "env-user:env-pass"},
		{"env credentials never go to another registry", ghcr, map[string]string{
			"DOCKER_USERNAME": "env-user", "DOCKER_PASSWORD": "env-pass", "DOCKER_CONFIG": cfgDir,
		}, hubReg, "hub-user:hub-pass"},
		{"docker hub config key", hub, map[string]string{"DOCKER_CONFIG": cfgDir}, hubReg, "hub-user:hub-pass"},
		{"nothing known is anonymous", ghcr, map[string]string{"DOCKER_CONFIG": cfgDir}, otherReg, "anonymous"},
		{"missing config is anonymous", ghcr, map[string]string{"DOCKER_CONFIG": t.TempDir()}, ghcrReg, "anonymous"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolved(t, Keychain(tt.info, mapEnv(tt.env)), tt.target)
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestKeychainDefaultDockerConfig(t *testing.T) {
	// Without DOCKER_CONFIG in env, authn.DefaultKeychain reads the
	// process's docker config.
	dir := writeDockerConfig(t, map[string]string{"ghcr.io": "default-user:default-pass"})
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("HOME", t.TempDir())
	ghcr, _ := registry.Detect("ghcr.io/acme/bot-core")
	reg, _ := name.NewRegistry("ghcr.io")
	if got := resolved(t, Keychain(ghcr, mapEnv(nil)), reg); got != "default-user:default-pass" {
		t.Errorf("got %s", got)
	}
}

func TestKeychainBrokenConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	ghcr, _ := registry.Detect("ghcr.io/acme/bot-core")
	reg, _ := name.NewRegistry("ghcr.io")
	_, err := Keychain(ghcr, mapEnv(map[string]string{"DOCKER_CONFIG": dir})).Resolve(reg)
	if err == nil || !strings.Contains(err.Error(), "cannot read the docker config") {
		t.Errorf("err = %v", err)
	}
}

func TestConfigAuthKey(t *testing.T) {
	hub, _ := registry.Detect("acme")
	if got := ConfigAuthKey(hub); got != "https://index.docker.io/v1/" {
		t.Errorf("hub key %q", got)
	}
	local, _ := registry.Detect("127.0.0.1:5000/x")
	if got := ConfigAuthKey(local); got != "127.0.0.1:5000" {
		t.Errorf("key %q", got)
	}
}
