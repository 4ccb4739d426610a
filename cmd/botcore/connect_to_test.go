package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/bot-core/delivery/pipelines/registry/registrytest"
)

func TestConnectToParse(t *testing.T) {
	rules, err := parseConnectTo([]string{"127.0.0.1:5000:registry:5000", "[::1]:443:[fd00::2]:8443", "Fulcio.Example:443:fulcio_alias:08080", " ", "127.0.0.1:5000:registry:5000"}, "--connect-to")
	if err != nil {
		t.Fatal(err)
	}
	connectRules.Store(&rules)
	defer connectRules.Store(nil)
	for addr, want := range map[string]string{
		"127.0.0.1:5000":     "registry:5000",
		"127.0.0.1:5001":     "127.0.0.1:5001", // no wildcard port
		"127.0.0.2:5000":     "127.0.0.2:5000", // no wildcard host
		"[::1]:443":          "[fd00::2]:8443",
		"[0:0::1]:443":       "[fd00::2]:8443", // the same address spelled otherwise
		"fulcio.example:443": "fulcio_alias:8080",
		"FULCIO.example:443": "fulcio_alias:8080",
		"rekor.example:443":  "rekor.example:443",
	} {
		if got := redirect(addr); got != want {
			t.Errorf("redirect(%s) = %s, want %s", addr, got, want)
		}
	}
}

// badConnectTo are refused entries and the whole error each gets.
var badConnectTo = []struct{ entry, err string }{
	{"::evil.example:", `HOST is empty, and botcore refuses curl's empty-field wildcards because they redirect every connection, so give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)`},
	{"registry.example:5000::5001", `CONNECT_HOST is empty, and botcore refuses curl's empty-field wildcards because they redirect every connection, so give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)`},
	{"registry.example::evil.example:443", `PORT is empty, and botcore refuses curl's empty-field wildcards because they redirect every connection, so give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)`},
	{"registry.example:5000:evil.example:", `CONNECT_PORT is empty, and botcore refuses curl's empty-field wildcards because they redirect every connection, so give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)`},
	{"registry:5000", `it does not have four colon-separated fields, so give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)`},
	{"a.example:1:b.example:2:c", `it has more than four colon-separated fields, so give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)`},
	{"::1:443:registry:5000", `it has more than four colon-separated fields, so give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)`},
	{"[::1:443:registry:5000", `its brackets do not match, so give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)`},
	{"[[::1]]:443:registry:5000", `its brackets do not match, so give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)`},
	{"[127.0.0.1]:443:registry:5000", `HOST "[127.0.0.1]" is not a host name or an IP address, so give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)`},
	{"*.example:443:registry:5000", `HOST "*.example" is not a host name or an IP address, so give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)`},
	{"1.2.3.999:443:registry:5000", `HOST "1.2.3.999" is not a host name or an IP address, so give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)`},
	{"registry.example:443:-evil..example:5000", `CONNECT_HOST "-evil..example" is not a host name or an IP address, so give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)`},
	{"registry.example:443:http://evil.example:5000", `it has more than four colon-separated fields, so give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)`},
	{"registry.example:443:registry:99999", `CONNECT_PORT "99999" is not a number from 1 to 65535`},
	{"registry.example:0:registry:5000", `PORT "0" is not a number from 1 to 65535`},
	{"registry.example:+443:registry:5000", `PORT "+443" is not a number from 1 to 65535`},
	{"registry.example:https:registry:5000", `PORT "https" is not a number from 1 to 65535`},
}

// TestConnectToRefusesBadEntries: each bad entry, from the flag or the
// environment, is a usage error naming it, and the command never runs:
// nothing connects to the listener every reference and rule points at.
func TestConnectToRefusesBadEntries(t *testing.T) {
	var dials atomic.Int32
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	ts.Start()
	defer ts.Close()
	ln := ts.Listener
	lnHost, lnPort, _ := net.SplitHostPort(ln.Addr().String())
	env := map[string]string{"DOCKER_REGISTRY": ln.Addr().String() + "/bot", "DOCKER_CONFIG": t.TempDir(), "HOME": t.TempDir()}
	// Rules that would send everything to the listener, if accepted.
	toListener := strings.NewReplacer("evil.example", lnHost, "registry:5000", lnHost+":"+lnPort, "registry:99999", lnHost+":99999")

	for _, c := range badConnectTo {
		entry := toListener.Replace(c.entry)
		want := c.err
		r := botcore(t, env, "", "--connect-to", "ok.example:1:ok.example:2", "--connect-to", entry, "versions", "-s", svc)
		if wantErr := fmt.Sprintf("botcore: invalid --connect-to entry %q: %s\n", entry, want); r.code != 2 || !strings.HasPrefix(r.stderr, wantErr) {
			t.Errorf("--connect-to %q: %s\nwant stderr starting %q", entry, r, wantErr)
		}
		env["BOTCORE_CONNECT_TO"] = "ok.example:1:ok.example:2," + entry
		r = botcore(t, env, "", "versions", "-s", svc)
		delete(env, "BOTCORE_CONNECT_TO")
		if wantErr := fmt.Sprintf("botcore: invalid BOTCORE_CONNECT_TO entry %q: %s\n", entry, want); r.code != 2 || !strings.HasPrefix(r.stderr, wantErr) {
			t.Errorf("BOTCORE_CONNECT_TO=%q: %s\nwant stderr starting %q", entry, r, wantErr)
		}
	}
	r := botcore(t, env, "", "--connect-to", "a.example:443:"+lnHost+":"+lnPort, "--connect-to", "a.example:443:b.example:443", "versions", "-s", svc)
	wantErr := fmt.Sprintf("botcore: invalid --connect-to entry \"a.example:443:b.example:443\": a.example:443 is already redirected to %s, and only the first rule would apply, so keep one\n", ln.Addr())
	if r.code != 2 || !strings.HasPrefix(r.stderr, wantErr) {
		t.Errorf("conflicting rules: %s\nwant stderr starting %q", r, wantErr)
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("%d connections were made although every command line was refused", n)
	}
	if rules := connectRules.Load(); rules != nil && len(*rules) != 0 {
		t.Errorf("a refused command line left rules behind: %+v", *rules)
	}

	// The listener does count: a command that runs reaches it.
	botcore(t, env, "", "versions", "-s", svc)
	if dials.Load() == 0 {
		t.Error("versions did not connect to the registry listener")
	}
}

// TestConnectToIgnoredByDeploy: deploy never takes rules from
// BOTCORE_CONNECT_TO (not even bad ones), says so, and still honours an
// explicit --connect-to.
func TestConnectToIgnoredByDeploy(t *testing.T) {
	defer botcore(t, nil, "", "registry", "detect", "ghcr.io/acme") // drop the rules
	dir := t.TempDir()
	env := map[string]string{"DOCKER_REGISTRY": "127.0.0.1:1/bot", "DOCKER_CONFIG": t.TempDir(), "HOME": t.TempDir(),
		"DOCKER_HOST": "unix://" + filepath.Join(dir, "none.sock")}
	for _, v := range []string{"127.0.0.1:1:127.0.0.1:2", "::evil.example:"} {
		env["BOTCORE_CONNECT_TO"] = v
		// Other commands read it: they install the rule or refuse the entry.
		r := botcore(t, env, "", "registry", "detect", "ghcr.io/acme")
		rules := connectRules.Load()
		if bad := strings.HasPrefix(v, ":"); bad && r.code != 2 || !bad && (r.code != 0 || rules == nil || len(*rules) != 1) {
			t.Fatalf("registry detect with BOTCORE_CONNECT_TO=%q: %s", v, r)
		}
		// The compose file does not exist, so deploy stops before any connection.
		r = botcore(t, env, "", "deploy", "--version", "v1.0.0", "--dry-run", "-f", filepath.Join(dir, "missing.yml"))
		warn := fmt.Sprintf("botcore: warning: deploy ignores BOTCORE_CONNECT_TO=%q; pass --connect-to to redirect its connections\n", v)
		if r.code != 1 || !strings.HasPrefix(r.stderr, warn) || !strings.Contains(r.stderr, "missing.yml") {
			t.Errorf("deploy with BOTCORE_CONNECT_TO=%q: %s\nwant stderr starting %q", v, r, warn)
		}
		if rules := connectRules.Load(); rules == nil || len(*rules) != 0 {
			t.Errorf("deploy installed rules from BOTCORE_CONNECT_TO=%q: %v", v, rules)
		}
		r = botcore(t, env, "", "--connect-to", "127.0.0.1:1:127.0.0.1:2", "deploy", "--version", "v1.0.0", "--dry-run", "-f", filepath.Join(dir, "missing.yml"))
		if strings.Contains(r.stderr, "warning: deploy ignores") {
			t.Errorf("the flag overrides the variable, no warning expected: %s", r)
		}
		if rules := connectRules.Load(); rules == nil || len(*rules) != 1 || (*rules)[0].connectPort != "2" {
			t.Errorf("deploy --connect-to installed %v", rules)
		}
	}
}

// TestConnectTo reaches a registry on one port through a reference naming
// another, from the flag and from BOTCORE_CONNECT_TO.
func TestConnectTo(t *testing.T) {
	srv := registrytest.NewBasic(t)
	seedRelease(t, srv, svc, "v1.0.0")
	_, port, _ := net.SplitHostPort(srv.Host)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := free.Addr().String() // nothing listens there once closed
	free.Close()
	env := envFor(t, srv)
	env["DOCKER_REGISTRY"] = dead + "/bot"
	env["DOCKER_USERNAME"], env["DOCKER_PASSWORD"] = srv.User, srv.Password // the keychain matches the name, not the dial target

	r := botcore(t, env, "", "versions", "-s", svc)
	wantError(t, r, "the connection was refused")

	deadHost, deadPort, _ := net.SplitHostPort(dead)
	r = botcore(t, env, "", "--connect-to", deadHost+":"+deadPort+":localhost:"+port, "versions", "-s", svc)
	if r.code != 0 || !strings.Contains(r.stdout, "v1.0.0") || !strings.Contains(r.stdout, dead+"/bot/"+svc) {
		t.Errorf("versions through --connect-to: %s", r)
	}
	env["BOTCORE_CONNECT_TO"] = "unused.example:1:nowhere:1," + deadHost + ":" + deadPort + ":localhost:" + port
	if r := botcore(t, env, "", "versions", "-s", svc); r.code != 0 || !strings.Contains(r.stdout, "v1.0.0") {
		t.Errorf("versions through BOTCORE_CONNECT_TO: %s", r)
	}
	// The rules of one run do not leak into the next.
	delete(env, "BOTCORE_CONNECT_TO")
	wantError(t, botcore(t, env, "", "versions", "-s", svc), "the connection was refused")

}

// TestConnectToKeepsTLSName: an HTTPS URL naming example.com is served by a
// server on 127.0.0.1 whose certificate is only valid for the names, so the
// TLS server name and Host header must stay example.com.
func TestConnectToKeepsTLSName(t *testing.T) {
	var host string
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host = r.Host
		_, _ = io.WriteString(w, "hello")
	}))
	defer ts.Close()
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())

	r := botcore(t, nil, "", "--connect-to", "example.com:443:127.0.0.1:"+port, "registry", "detect", "ghcr.io/acme")
	if r.code != 0 {
		t.Fatal(r)
	}
	defer botcore(t, nil, "", "registry", "detect", "ghcr.io/acme") // drop the rules
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	tr := http.DefaultTransport.(*http.Transport).Clone() // clones keep the redirecting dialer
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	resp, err := (&http.Client{Transport: tr}).Get("https://example.com/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "hello" || host != "example.com" {
		t.Errorf("got %q with Host %q", body, host)
	}
}
