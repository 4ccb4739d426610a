package e2e

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// npmProxy stands in for a company npm registry (a Nexus or Verdaccio in
// front of registry.npmjs.org): it wants a bearer token and passes what it
// is asked for on to the public registry, which this machine reaches.
type npmProxy struct {
	URL string
	mu  sync.Mutex
	// tarballs counts the packages fetched with the token; refused the
	// requests without it.
	tarballs, refused int
}

func serveNpmProxy(t *testing.T, token string) *npmProxy {
	t.Helper()
	upstream, _ := url.Parse("https://registry.npmjs.org")
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(upstream)
		r.Out.Header.Del("Authorization")
	}}
	p := &npmProxy{}
	ln, err := net.Listen("tcp", containerHost(t)+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		ok := r.Header.Get("Authorization") == "Bearer "+token
		switch {
		case !ok:
			p.refused++
		case strings.Contains(r.URL.Path, "/-/"):
			p.tarballs++
		}
		p.mu.Unlock()
		if !ok {
			http.Error(w, `{"error":"token required"}`, http.StatusUnauthorized)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p.URL = "http://" + ln.Addr().String() + "/"
	return p
}

func (p *npmProxy) counts() (tarballs, refused int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tarballs, p.refused
}
