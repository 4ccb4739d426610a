package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProbe(t *testing.T) {
	var paths []string
	var gotHost string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths, gotHost = append(paths, r.URL.RequestURI()), r.Host
		switch r.URL.Path {
		case "/health":
			w.WriteHeader(http.StatusNoContent)
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	// A port that refuses: one that was listening a moment ago.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/health"
	l.Close()

	// A server that answers, but not HTTP.
	notHTTP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer notHTTP.Close()
	go func() {
		for {
			c, err := notHTTP.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
			c.Close()
		}
	}()

	for _, c := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{srv.URL + "/health?deep=1"}, 0, "answered 204", ""},
		{[]string{srv.URL + "/moved"}, 0, "answered 302", ""},
		{[]string{srv.URL + "/db"}, 1, "", "GET " + srv.URL + "/db answered 503"},
		{[]string{closed}, 1, "", "connection refused"},
		{[]string{"http://" + notHTTP.Addr().String() + "/"}, 1, "", `not an HTTP answer: "SSH-2.0-OpenSSH_9.2"`},
		{[]string{"https://127.0.0.1/health"}, 1, "", `"https://127.0.0.1/health" is not an http:// URL`},
		{nil, 2, "", "usage: botcore-probe http://127.0.0.1:PORT/PATH"},
		{[]string{"--help"}, 2, "", "usage:"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stdout.String(), c.stdout) || !strings.Contains(stderr.String(), c.stderr) {
			t.Errorf("botcore-probe %q: exit %d, stdout %q, stderr %q; want exit %d, %q, %q", c.args, code, stdout.String(), stderr.String(), c.code, c.stdout, c.stderr)
		}
	}
	// The query goes along, the redirect is not followed.
	if gotHost != strings.TrimPrefix(srv.URL, "http://") || strings.Join(paths, " ") != "/health?deep=1 /moved /db" {
		t.Errorf("requests: Host %q, paths %q", gotHost, paths)
	}
}
