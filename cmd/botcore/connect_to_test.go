package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bot-core/delivery/pipelines/registry/registrytest"
)

func TestParseConnectTo(t *testing.T) {
	rules, err := parseConnectTo([]string{"127.0.0.1:5000:registry:5000", "[::1]:443:[fd00::2]:8443", "Fulcio.Example:443::8080", "::other:"})
	if err != nil {
		t.Fatal(err)
	}
	connectRules.Store(&rules)
	defer connectRules.Store(nil)
	for addr, want := range map[string]string{
		"127.0.0.1:5000":     "registry:5000",
		"127.0.0.1:5001":     "other:5001", // "::other:" matches any host and port
		"[::1]:443":          "[fd00::2]:8443",
		"fulcio.example:443": "fulcio.example:8080",
	} {
		if got := redirect(addr); got != want {
			t.Errorf("redirect(%s) = %s, want %s", addr, got, want)
		}
	}
	for _, bad := range []string{"registry:5000", "a:b:c:d", "h:1:h:99999", "a:1:b:2:c"} {
		if _, err := parseConnectTo([]string{bad}); err == nil {
			t.Errorf("%q parsed", bad)
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

	r = botcore(t, env, "", "--connect-to", "registry:5000", "versions")
	if r.code != 2 || !strings.Contains(r.stderr, `invalid --connect-to "registry:5000"`) {
		t.Errorf("bad --connect-to: %s", r)
	}
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
