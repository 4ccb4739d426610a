package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/bot-core/delivery/cmd/botcore/internal/credentials"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/bot-core/delivery/pipelines/services"
	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

type registryCmd struct {
	Detect detectCmd `cmd:"" help:"Recognise a registry prefix and print its kind and facts."`
	Login  loginCmd  `cmd:"" help:"Verify credentials against the registry and save them like docker login: through the docker config's credential helper (credHelpers, credsStore) when it names one, else in config.json."`
}

type detectCmd struct {
	Ref string `arg:"" optional:"" name:"ref" help:"Registry prefix to detect (default: --registry / DOCKER_REGISTRY)."`
}

func (c *detectCmd) Run(g *Globals, a *app) error {
	ref := c.Ref
	if ref == "" {
		ref = g.RegistryRef
	}
	if ref == "" {
		return errors.New("no registry prefix given: pass it as REF, with --registry or in DOCKER_REGISTRY, e.g. ghcr.io/acme/bot-core")
	}
	info, err := registry.Detect(ref)
	if err != nil {
		return err
	}
	if g.JSON {
		return a.printJSON(info)
	}
	tw := a.table()
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("kind", string(info.Kind))
	row("registry", info.Registry)
	row("repository", info.Repository)
	row("account", info.Account)
	row("region", info.Region)
	row("project", info.Project)
	row("location", info.Location)
	row("registry name", info.RegistryName)
	row("insecure (plain HTTP)", fmt.Sprint(info.Insecure))
	for _, s := range services.Default().Names() {
		repo, err := info.Repo(s)
		if err != nil {
			return err
		}
		row("image", repo.String())
	}
	for _, w := range info.Warnings {
		row("warning", w)
	}
	return tw.Flush()
}

type loginCmd struct {
	Username      string `short:"u" placeholder:"USER" help:"User name (default: DOCKER_USERNAME, or GITHUB_ACTOR for ghcr.io)."`
	PasswordStdin bool   `name:"password-stdin" help:"Read the password or token from standard input (default: DOCKER_PASSWORD, or GITHUB_TOKEN for ghcr.io)."`
}

// loginResult is what login reports (never the secret).
type loginResult struct {
	Registry   string `json:"registry"`
	Username   string `json:"username"`
	Checked    string `json:"checked_push_to"`
	ConfigFile string `json:"config_file"`
	// CredentialHelper is the program that stores the credentials when the
	// docker config names one; config.json then holds no secret for them.
	CredentialHelper string `json:"credential_helper,omitempty"`
}

func (c *loginCmd) Run(g *Globals, a *app) error {
	info, err := g.info()
	if err != nil {
		return err
	}
	user := c.Username
	if user == "" {
		user = a.env(credentials.EnvUsername)
	}
	if user == "" && info.Kind == registry.KindGHCR {
		user = a.env(credentials.EnvGitHubActor)
	}
	if user == "" {
		return errors.New("no user name given: pass --username or set DOCKER_USERNAME")
	}
	var pass string
	if c.PasswordStdin {
		b, err := io.ReadAll(io.LimitReader(a.stdin, 1<<20))
		if err != nil {
			return fmt.Errorf("cannot read the password from standard input: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	} else {
		pass = a.env(credentials.EnvPassword)
		if pass == "" && info.Kind == registry.KindGHCR {
			pass = a.env(credentials.EnvGitHubToken)
		}
	}
	if pass == "" {
		return errors.New("no password given: pipe it to --password-stdin or set DOCKER_PASSWORD")
	}

	repo, err := info.Repo(services.Default().Names()[0])
	if err != nil {
		return err
	}
	a.progress("verifying push access for %s to %s", user, repo)
	kc := staticKeychain{authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})}
	if err := remote.CheckPushPermission(repo.Tag("latest"), kc, http.DefaultTransport); err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusUnauthorized {
			return &registry.Explained{Msg: fmt.Sprintf("registry %s rejected the credentials for %s: check the user name and the password or token", info.Registry, user), Err: err}
		}
		return registry.Explain(err, info)
	}

	dir := a.env(credentials.EnvDockerCfg)
	if dir == "" {
		home := a.env("HOME")
		if home == "" {
			if home, err = os.UserHomeDir(); err != nil {
				return errors.New("cannot find the docker config: set DOCKER_CONFIG or HOME")
			}
		}
		dir = filepath.Join(home, ".docker")
	}
	key := credentials.ConfigAuthKey(info)
	res := loginResult{Registry: info.Registry, Username: user, Checked: repo.String()}
	res.ConfigFile, res.CredentialHelper, err = storeLogin(dir, key, user, pass)
	if err != nil {
		return err
	}
	if g.JSON {
		return a.printJSON(res)
	}
	where := res.ConfigFile
	if res.CredentialHelper != "" {
		where = fmt.Sprintf("the credential helper %s (named in %s)", res.CredentialHelper, res.ConfigFile)
	}
	fmt.Fprintf(a.stdout, "Login Succeeded: %s can push to %s; credentials saved to %s\n", user, repo, where)
	return nil
}

// storeLogin saves the credentials where docker login would: through the
// credential helper the config names for key (credHelpers[key], else
// credsStore), or as auth in dir/config.json when it names none. A
// platform default store is not guessed: docker picks one only when its
// program is installed, and botcore's keychain reads what the config says.
func storeLogin(dir, key, user, pass string) (path, helper string, err error) {
	path = filepath.Join(dir, config.ConfigFileName)
	cf, err := config.Load(dir)
	if err != nil {
		return "", "", fmt.Errorf("cannot update the docker config: %v, so fix or remove %s first", err, path)
	}
	helper = cf.CredentialHelpers[key]
	if helper == "" {
		helper = cf.CredentialsStore
	}
	if helper == "" {
		return path, "", saveAuth(dir, key, user, pass)
	}
	// The helper keeps the secret; docker's store then writes an empty
	// auths entry (dropping any plaintext auth an earlier login left).
	if err := cf.GetCredentialsStore(key).Store(types.AuthConfig{ServerAddress: key, Username: user, Password: pass}); err != nil {
		return "", "", fmt.Errorf("cannot save the credentials with the credential helper docker-credential-%s that %s names (%v), so install it on PATH or change the config", helper, path, err)
	}
	return path, "docker-credential-" + helper, nil
}

// staticKeychain answers every resource with one authenticator.
type staticKeychain struct{ auth authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// saveAuth merges {"auth": base64(user:pass)} under auths[key] into
// dir/config.json the way docker login does without a credential store,
// keeping every other setting, and writes it atomically with mode 0600.
func saveAuth(dir, key, user, pass string) error {
	path := filepath.Join(dir, config.ConfigFileName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create the docker config directory %s: %w", dir, err)
	}
	top := map[string]json.RawMessage{}
	if b, err := os.ReadFile(path); err == nil {
		if len(bytes.TrimSpace(b)) > 0 {
			if err := json.Unmarshal(b, &top); err != nil {
				return fmt.Errorf("cannot update %s: it is not valid JSON (%v), so fix or remove it first", path, err)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	auths := map[string]map[string]any{}
	if raw, ok := top["auths"]; ok {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return fmt.Errorf("cannot update %s: its \"auths\" is not an object of entries (%v)", path, err)
		}
	}
	auths[key] = map[string]any{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}
	raw, err := json.Marshal(auths)
	if err != nil {
		return err
	}
	top["auths"] = raw

	out, err := json.MarshalIndent(top, "", "\t")
	if err != nil {
		return err
	}
	// 0600: the file holds credentials.
	if err := replaceFile(path, 0o600, func(w io.Writer) error {
		_, err := w.Write(append(out, '\n'))
		return err
	}); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}
