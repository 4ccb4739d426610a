package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-core/delivery/pipelines/registry/registrytest"
)

// credentialHelper is a docker credential helper (store, get, erase, list
// over stdin/stdout, as docker-credential-helpers' client speaks it) that
// keeps each entry as the JSON it was given, in a file named by the hex of
// its server URL, and logs every action.
const credentialHelper = `#!/bin/sh
data='DATA'
echo "$1" >> "$data/log"
key() { od -An -tx1 | tr -d ' \n'; }
field() { sed -n 's/.*"'"$1"'":"\([^"]*\)".*/\1/p' "$2"; }
case "$1" in
store)
	cat > "$data/in"
	url=$(field ServerURL "$data/in")
	[ -n "$url" ] || { echo "no ServerURL given"; exit 1; }
	mv "$data/in" "$data/creds/$(printf '%s' "$url" | key)"
	;;
get)
	f="$data/creds/$(key)"
	if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi
	;;
erase)
	rm -f "$data/creds/$(key)"
	;;
list)
	printf '{'
	sep=
	for f in "$data"/creds/*; do
		[ -f "$f" ] || continue
		printf '%s"%s":"%s"' "$sep" "$(field ServerURL "$f")" "$(field Username "$f")"
		sep=,
	done
	echo '}'
	;;
*)
	echo "unknown action $1"
	exit 1
	;;
esac
`

// installCredentialHelper puts docker-credential-<name> on PATH and returns
// the directory of its data.
func installCredentialHelper(t *testing.T, name string) string {
	t.Helper()
	bin, data := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(data, "creds"), 0o700); err != nil {
		t.Fatal(err)
	}
	script := strings.Replace(credentialHelper, "DATA", data, 1)
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-"+name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// The helper is run by the docker config library with the process's
	// PATH, not botcore's env function.
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return data
}

// helperEntry is what the helper holds for url.
func helperEntry(t *testing.T, data, url string) (user, secret string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "creds", fmt.Sprintf("%x", url)))
	if err != nil {
		t.Fatalf("the credential helper holds nothing for %s: %v", url, err)
	}
	var c struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return c.Username, c.Secret
}

// TestLoginCredentialHelper: when the docker config names a credential
// helper for the registry (credsStore, or credHelpers for that host), login
// stores through it, config.json keeps no secret for the registry (an old
// plaintext entry goes), and later commands read the credentials back
// through the helper.
func TestLoginCredentialHelper(t *testing.T) {
	for _, how := range []string{"credsStore", "credHelpers"} {
		t.Run(how, func(t *testing.T) {
			srv := registrytest.NewBearer(t)
			data := installCredentialHelper(t, "botcoretest")
			cfgDir := t.TempDir()
			cfgPath := filepath.Join(cfgDir, "config.json")
			stale := base64.StdEncoding.EncodeToString([]byte("old-user:old-pass"))
			store := `"credsStore": "botcoretest"`
			if how == "credHelpers" {
				store = fmt.Sprintf(`"credHelpers": {%q: "botcoretest"}`, srv.Host)
			}
			existing := fmt.Sprintf(`{"auths": {%q: {"auth": %q}, "other.example.com": {"auth": "b3RoZXI6b3RoZXI="}}, %s, "psFormat": "table {{.ID}}"}`, srv.Host, stale, store)
			if err := os.WriteFile(cfgPath, []byte(existing), 0o600); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"DOCKER_REGISTRY": srv.Host + "/bot", "DOCKER_CONFIG": cfgDir}

			// Rejected credentials reach neither the helper nor the file.
			r := botcore(t, env, "wrong-password\n", "registry", "login", "-u", srv.User, "--password-stdin")
			if r.code != 1 || !strings.Contains(r.stderr, "rejected the credentials") {
				t.Errorf("wrong password: %s", r)
			}
			if _, err := os.Stat(filepath.Join(data, "log")); err == nil {
				t.Error("the helper was called for rejected credentials")
			}

			r = botcore(t, env, srv.Password+"\n", "--json", "registry", "login", "-u", srv.User, "--password-stdin")
			if r.code != 0 {
				t.Fatal(r)
			}
			var res loginResult
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("%v: %s", err, r.stdout)
			}
			if res.CredentialHelper != "docker-credential-botcoretest" || res.ConfigFile != cfgPath || res.Registry != srv.Host {
				t.Errorf("login result %+v", res)
			}
			if user, secret := helperEntry(t, data, srv.Host); user != srv.User || secret != srv.Password {
				t.Errorf("the helper holds %q/%q, want %q and the password", user, secret, srv.User)
			}

			b, err := os.ReadFile(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			var cfg struct {
				Auths       map[string]map[string]string `json:"auths"`
				CredsStore  string                       `json:"credsStore"`
				CredHelpers map[string]string            `json:"credHelpers"`
				PSFormat    string                       `json:"psFormat"`
			}
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			if entry, ok := cfg.Auths[srv.Host]; ok && entry["auth"] != "" {
				t.Errorf("config.json still holds plaintext auth for %s: %s", srv.Host, b)
			}
			plain := base64.StdEncoding.EncodeToString([]byte(srv.User + ":" + srv.Password))
			if strings.Contains(string(b), srv.Password) || strings.Contains(string(b), plain) || strings.Contains(string(b), stale) {
				t.Errorf("config.json holds a secret: %s", b)
			}
			if cfg.Auths["other.example.com"]["auth"] != "b3RoZXI6b3RoZXI=" || cfg.PSFormat != "table {{.ID}}" ||
				cfg.CredsStore+cfg.CredHelpers[srv.Host] != "botcoretest" {
				t.Errorf("other settings lost: %s", b)
			}

			// Without env credentials, botcore reads them back through the helper.
			srv.Push(t, srv.Host+"/bot/"+svc+":v1.0.0", registrytest.Index(t, nil, base))
			if err := os.Remove(filepath.Join(data, "log")); err != nil {
				t.Fatal(err)
			}
			r = botcore(t, env, "", "versions", "-s", svc)
			if r.code != 0 || !strings.Contains(r.stdout, "v1.0.0") {
				t.Errorf("versions with the helper's credentials: %s", r)
			}
			if log, _ := os.ReadFile(filepath.Join(data, "log")); !strings.Contains(string(log), "get") {
				t.Errorf("versions did not ask the helper (log %q)", log)
			}

			// The text output says where the credentials went.
			r = botcore(t, env, srv.Password+"\n", "registry", "login", "-u", srv.User, "--password-stdin")
			want := fmt.Sprintf("Login Succeeded: %s can push to %s/bot/%s; credentials saved to the credential helper docker-credential-botcoretest (named in %s)\n", srv.User, srv.Host, svc, cfgPath)
			if r.code != 0 || r.stdout != want {
				t.Errorf("login: %s\nwant stdout %q", r, want)
			}
		})
	}
}

// TestLoginCredentialHelperMissing: a helper the config names but PATH
// lacks is one sentence, and config.json stays as it was.
func TestLoginCredentialHelperMissing(t *testing.T) {
	srv := registrytest.NewBasic(t)
	cfgDir := t.TempDir()
	cfgPath := filepath.Join(cfgDir, "config.json")
	existing := `{"credsStore": "botcore-absent"}`
	if err := os.WriteFile(cfgPath, []byte(existing), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DOCKER_REGISTRY": srv.Host + "/bot", "DOCKER_CONFIG": cfgDir}
	r := botcore(t, env, srv.Password+"\n", "registry", "login", "-u", srv.User, "--password-stdin")
	want := fmt.Sprintf("botcore: cannot save the credentials with the credential helper docker-credential-botcore-absent that %s names (", cfgPath)
	if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.HasSuffix(r.stderr, "), so install it on PATH or change the config\n") {
		t.Errorf("missing helper: %s\nwant stderr containing %q", r, want)
	}
	if b, _ := os.ReadFile(cfgPath); string(b) != existing {
		t.Errorf("config.json changed: %s", b)
	}
	if strings.Contains(r.stdout+r.stderr, srv.Password) {
		t.Error("the password was printed")
	}
}
