// Package registrytest runs real distribution-API registries for tests:
// go-containerregistry's pkg/registry in an httptest server on 127.0.0.1,
// behind either HTTP basic auth or a bearer-token flow with its own token
// endpoint. Deleting a manifest by digest also removes the tags pointing to
// it, as distribution does. It also seeds two-platform images.
package registrytest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Server is a running test registry.
type Server struct {
	// Host is "127.0.0.1:<port>".
	Host string
	// User and Password have full access; ReadUser and ReadPassword may
	// only pull (writes get 403 DENIED).
	User, Password         string
	ReadUser, ReadPassword string
	// NoDelete makes the registry refuse every DELETE with 405 UNSUPPORTED,
	// as registries with deletes disabled do.
	NoDelete bool

	srv    *httptest.Server
	mu     sync.Mutex
	tokens map[string]bool // token -> read-only
}

// Auth is the full-access authenticator, for seeding.
func (s *Server) Auth() authn.Authenticator {
	return &authn.Basic{Username: s.User, Password: s.Password}
}

// URL is the server's base URL.
func (s *Server) URL() string { return s.srv.URL }

// NewBasic starts a registry that requires HTTP basic auth.
func NewBasic(t testing.TB) *Server {
	s := newServer()
	s.start(t, func(inner http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			readOnly, valid := s.check(u, p, ok)
			if !valid {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
				return
			}
			s.serve(inner, readOnly, w, r)
		})
	})
	return s
}

// NewBearer starts a registry that requires a bearer token, issued by
// <url>/token to clients presenting valid basic credentials.
func NewBearer(t testing.TB) *Server {
	s := newServer()
	s.start(t, func(inner http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" {
				s.issueToken(w, r)
				return
			}
			token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			s.mu.Lock()
			readOnly, valid := s.tokens[token]
			s.mu.Unlock()
			if !ok || !valid {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="test"`, s.srv.URL+"/token"))
				writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
				return
			}
			s.serve(inner, readOnly, w, r)
		})
	})
	return s
}

func newServer() *Server {
	return &Server{User: "alice", Password: "s3cret-pass", ReadUser: "reader", ReadPassword: "read-only-pass", tokens: map[string]bool{}}
}

func (s *Server) start(t testing.TB, wrap func(http.Handler) http.Handler) {
	inner := deleteTagsWithDigest(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	s.srv = httptest.NewServer(wrap(inner))
	t.Cleanup(s.srv.Close)
	s.Host = strings.TrimPrefix(s.srv.URL, "http://")
}

// check validates basic credentials: valid, and whether they are read-only.
func (s *Server) check(u, p string, ok bool) (readOnly, valid bool) {
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	switch {
	case !ok:
		return false, false
	case eq(u, s.User) && eq(p, s.Password):
		return false, true
	case eq(u, s.ReadUser) && eq(p, s.ReadPassword):
		return true, true
	}
	return false, false
}

func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) {
	u, p, ok := r.BasicAuth()
	readOnly, valid := s.check(u, p, ok)
	if !valid {
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid credentials")
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	s.mu.Lock()
	s.tokens[token] = readOnly
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": token, "expires_in": 300})
}

// serve forwards to the registry, refusing writes for read-only users.
func (s *Server) serve(inner http.Handler, readOnly bool, w http.ResponseWriter, r *http.Request) {
	if readOnly && r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusForbidden, "DENIED", "requested access to the resource is denied")
		return
	}
	if s.NoDelete && r.Method == http.MethodDelete {
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "The operation is unsupported.")
		return
	}
	inner.ServeHTTP(w, r)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// deleteTagsWithDigest makes DELETE /v2/<repo>/manifests/<digest> remove
// every tag on that digest too, as a distribution registry does
// (go-containerregistry's in-memory registry only forgets the digest).
func deleteTagsWithDigest(inner http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		i := strings.LastIndex(p, "/manifests/")
		if r.Method != http.MethodDelete || i < 0 || !strings.HasPrefix(p, "/v2/") || !strings.Contains(p[i:], ":") {
			inner.ServeHTTP(w, r)
			return
		}
		repo, digest := p[len("/v2/"):i], p[i+len("/manifests/"):]
		var doomed []string
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/"+repo+"/tags/list", nil))
		var list struct {
			Tags []string `json:"tags"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &list)
		for _, tag := range list.Tags {
			rec := httptest.NewRecorder()
			inner.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/v2/"+repo+"/manifests/"+tag, nil))
			if rec.Header().Get("Docker-Content-Digest") == digest {
				doomed = append(doomed, tag)
			}
		}
		rec = httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		if rec.Code == http.StatusAccepted {
			for _, tag := range doomed {
				inner.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodDelete, "/v2/"+repo+"/manifests/"+tag, nil))
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// Platforms are the platforms Index builds.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// Index builds a random two-platform image index whose images carry labels
// and, unless zero, the config creation time created.
func Index(t testing.TB, labels map[string]string, created time.Time) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, p := range Platforms {
		img, err := random.Image(256, 2)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cfg := cf.Config
		cfg.Labels = labels
		if img, err = mutate.Config(img, cfg); err != nil {
			t.Fatal(err)
		}
		cf, err = img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = p.OS, p.Architecture
		cf.Created = v1.Time{Time: created}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		platform := p
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platform}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}

// Push writes idx to ref (e.g. "127.0.0.1:1234/bot/svc:v1.0.0") and returns
// its digest.
func (s *Server) Push(t testing.TB, ref string, idx v1.ImageIndex) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx, remote.WithAuth(s.Auth())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// PushImage writes a single random image (e.g. a stand-in for a cosign
// signature) to ref and returns its digest.
func (s *Server) PushImage(t testing.TB, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(s.Auth())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// Tag points repo:tag at the manifest repo@digest.
func (s *Server) Tag(t testing.TB, repo, tag, digest string) {
	t.Helper()
	d, err := name.NewDigest(repo+"@"+digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(d, remote.WithAuth(s.Auth()))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Tag(d.Context().Tag(tag), desc, remote.WithAuth(s.Auth())); err != nil {
		t.Fatalf("tag %s:%s: %v", repo, tag, err)
	}
}

// Tags lists repo's tags.
func (s *Server) Tags(t testing.TB, repo string) []string {
	t.Helper()
	r, err := name.NewRepository(repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	list, err := remote.List(r, remote.WithAuth(s.Auth()))
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// Exists reports whether repo@digest is still in the registry.
func (s *Server) Exists(t testing.TB, repo, digest string) bool {
	t.Helper()
	d, err := name.NewDigest(repo+"@"+digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(d, remote.WithAuth(s.Auth()))
	return err == nil
}
