package registry

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Explained is a registry error rewritten as one sentence that says what
// went wrong and what to do next. The original error stays reachable through
// errors.As / errors.Is.
type Explained struct {
	Msg string
	Err error
}

func (e *Explained) Error() string { return e.Msg }
func (e *Explained) Unwrap() error { return e.Err }

// LoginHint is the next step suggested whenever credentials are rejected.
const LoginHint = "check DOCKER_USERNAME/DOCKER_PASSWORD (or run `botcore registry login`)"

// Explain turns go-containerregistry transport and network errors into one
// clear sentence with the next step; other errors (and nil) are returned
// unchanged. info names the registry when the error itself does not.
func Explain(err error, info Info) error {
	if err == nil {
		return nil
	}
	var already *Explained
	if errors.As(err, &already) {
		return err
	}
	explained := func(format string, args ...any) error {
		return &Explained{Msg: fmt.Sprintf(format, args...), Err: err}
	}
	reg := info.Registry
	if reg == "" {
		reg = "the registry"
	}

	var terr *transport.Error
	if errors.As(err, &terr) {
		t := targetOf(terr, info)
		switch {
		case terr.StatusCode == http.StatusUnauthorized || hasCode(terr, transport.UnauthorizedErrorCode):
			hint := LoginHint
			if info.Kind == KindGHCR {
				hint = "check DOCKER_USERNAME/DOCKER_PASSWORD or GITHUB_TOKEN with GITHUB_ACTOR (or run `botcore registry login`)"
			}
			return explained("registry %s rejected the credentials for %s: %s", reg, t.repo, hint)
		case terr.StatusCode == http.StatusForbidden || hasCode(terr, transport.DeniedErrorCode):
			return explained("registry %s denied %s access to %s: the credentials are valid but lack that permission, so grant it (for ghcr.io a token with write:packages/delete:packages) or use other credentials", reg, t.access(), t.repo)
		case hasCode(terr, transport.NameUnknownErrorCode) || (terr.StatusCode == http.StatusNotFound && t.kind == "tags"):
			return explained("repository %s does not exist on %s: check the registry prefix and the service name, or publish a release first", t.repo, reg)
		case hasCode(terr, transport.ManifestUnknownErrorCode) || terr.StatusCode == http.StatusNotFound:
			if t.ref != "" {
				what := "tag"
				if strings.Contains(t.ref, ":") {
					what = "digest"
				}
				return explained("%s %s does not exist in %s: run `botcore versions` to list the published tags", what, t.ref, t.repo)
			}
			return explained("the tag or repository %s does not exist on %s: run `botcore versions` to list the published tags", t.repo, reg)
		case terr.StatusCode == http.StatusMethodNotAllowed || hasCode(terr, transport.UnsupportedErrorCode):
			return explained("registry %s does not support this operation on %s through the registry API (deleting usually has to be enabled, e.g. REGISTRY_STORAGE_DELETE_ENABLED=true, or done in the registry's web UI)", reg, t.repo)
		case terr.StatusCode == http.StatusTooManyRequests || hasCode(terr, transport.TooManyRequestsErrorCode):
			return explained("registry %s is rate-limiting requests for %s: wait and retry, or log in to get a higher limit", reg, t.repo)
		case terr.StatusCode >= 500:
			return explained("registry %s failed with HTTP %d on %s: it is having trouble, retry later", reg, terr.StatusCode, t.repo)
		}
		return explained("registry %s refused the request for %s (HTTP %d%s)", reg, t.repo, terr.StatusCode, codes(terr))
	}

	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return explained("cannot reach registry %s: the host name %s does not resolve, so check the registry host name and your DNS", reg, dnsErr.Name)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return explained("cannot reach registry %s: the connection was refused, so check the host and port and that the registry is running", reg)
	}
	var certErr *x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &certErr) || errors.As(err, &hostErr) {
		return explained("cannot reach registry %s: its TLS certificate is not trusted for that host, so add its CA to the system trust store or fix the host name", reg)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return explained("cannot reach registry %s: %v, so check the host, port and network", reg, opErr.Err)
	}
	return err
}

func hasCode(terr *transport.Error, code transport.ErrorCode) bool {
	for _, d := range terr.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

func codes(terr *transport.Error) string {
	var out []string
	for _, d := range terr.Errors {
		out = append(out, string(d.Code))
	}
	if len(out) == 0 {
		return ""
	}
	return " " + strings.Join(out, ", ")
}

// target is what a failed request was about, read from its URL
// (/v2/<repo>/manifests/<ref>, /v2/<repo>/tags/list, /v2/<repo>/blobs/...).
type target struct {
	repo, kind, ref, method string
}

func (t target) access() string {
	switch t.method {
	case http.MethodGet, http.MethodHead:
		return "pull"
	case http.MethodDelete:
		return "delete"
	case "":
		return "the requested"
	}
	return "push"
}

func targetOf(terr *transport.Error, info Info) target {
	t := target{repo: info.Prefix()}
	if t.repo == "" {
		t.repo = "the repository"
	}
	if terr.Request == nil || terr.Request.URL == nil {
		return t
	}
	t.method = terr.Request.Method
	u := terr.Request.URL
	p := strings.TrimPrefix(u.Path, "/v2/")
	if p == u.Path {
		// Not a registry API URL (e.g. the token endpoint): the scope
		// parameter names the repository.
		if scope := u.Query().Get("scope"); strings.HasPrefix(scope, "repository:") {
			parts := strings.Split(scope, ":")
			if len(parts) >= 2 {
				t.repo = info.Registry + "/" + parts[1]
			}
			if len(parts) >= 3 && strings.Contains(parts[len(parts)-1], "push") {
				t.method = http.MethodPost
			} else {
				t.method = ""
			}
		}
		return t
	}
	for _, kind := range []string{"/manifests/", "/tags/", "/blobs/"} {
		if i := strings.LastIndex(p, kind); i >= 0 {
			host := info.Registry
			if host == "" {
				host = u.Host
			}
			t.repo = host + "/" + p[:i]
			t.kind = strings.Trim(kind, "/")
			if kind == "/manifests/" {
				t.ref = p[i+len(kind):]
			}
			break
		}
	}
	return t
}
