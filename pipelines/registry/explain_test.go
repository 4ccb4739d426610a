package registry

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func terr(status int, method, rawURL string, codes ...transport.ErrorCode) error {
	u, _ := url.Parse(rawURL)
	e := &transport.Error{StatusCode: status, Request: &http.Request{Method: method, URL: u}}
	for _, c := range codes {
		e.Errors = append(e.Errors, transport.Diagnostic{Code: c, Message: "x"})
	}
	return fmt.Errorf("GET something: %w", e)
}

func TestExplain(t *testing.T) {
	info, _ := Detect("ghcr.io/acme/bot-core")
	harbor, _ := Detect("harbor.acme.internal:8443/bot")
	const m = "https://ghcr.io/v2/acme/bot-core/rust-core-engine/manifests/"
	tests := []struct {
		name string
		info Info
		err  error
		want string
	}{
		{"401", harbor, terr(401, "GET", "https://harbor.acme.internal:8443/v2/bot/web/tags/list", transport.UnauthorizedErrorCode),
			"registry harbor.acme.internal:8443 rejected the credentials for harbor.acme.internal:8443/bot/web: check DOCKER_USERNAME/DOCKER_PASSWORD (or run `botcore registry login`)"},
		{"401 ghcr mentions the token", info, terr(401, "HEAD", m+"v1"),
			"registry ghcr.io rejected the credentials for ghcr.io/acme/bot-core/rust-core-engine: check DOCKER_USERNAME/DOCKER_PASSWORD or GITHUB_TOKEN with GITHUB_ACTOR (or run `botcore registry login`)"},
		{"401 from the token endpoint", harbor, terr(401, "GET", "https://auth.acme.internal/token?scope=repository:bot/web:pull,push&service=x"),
			"registry harbor.acme.internal:8443 rejected the credentials for harbor.acme.internal:8443/bot/web: check DOCKER_USERNAME/DOCKER_PASSWORD (or run `botcore registry login`)"},
		{"403 push", info, terr(403, "PUT", m+"v1", transport.DeniedErrorCode),
			"registry ghcr.io denied push access to ghcr.io/acme/bot-core/rust-core-engine: the credentials are valid but lack that permission"},
		{"403 delete", info, terr(403, "DELETE", m+"sha256:abc", transport.DeniedErrorCode),
			"denied delete access"},
		{"DENIED code without 403", info, terr(400, "POST", "https://ghcr.io/v2/acme/bot-core/x/blobs/uploads/", transport.DeniedErrorCode),
			"denied push access to ghcr.io/acme/bot-core/x"},
		{"manifest unknown", info, terr(404, "GET", m+"v9.9.9", transport.ManifestUnknownErrorCode),
			"tag v9.9.9 does not exist in ghcr.io/acme/bot-core/rust-core-engine: run `botcore versions` to list the published tags"},
		{"HEAD 404 has no body", info, terr(404, "HEAD", m+"v9.9.9"),
			"tag v9.9.9 does not exist in ghcr.io/acme/bot-core/rust-core-engine"},
		{"digest unknown", info, terr(404, "GET", m+"sha256:abcd", transport.ManifestUnknownErrorCode),
			"digest sha256:abcd does not exist"},
		{"name unknown", info, terr(404, "GET", "https://ghcr.io/v2/acme/bot-core/nope/tags/list", transport.NameUnknownErrorCode),
			"repository ghcr.io/acme/bot-core/nope does not exist on ghcr.io: check the registry prefix and the service name"},
		{"unsupported delete", info, terr(405, "DELETE", m+"sha256:abcd", transport.UnsupportedErrorCode),
			"registry ghcr.io does not support this operation"},
		{"rate limit", info, terr(429, "GET", m+"v1", transport.TooManyRequestsErrorCode), "rate-limiting"},
		{"server error", info, terr(502, "GET", m+"v1"), "failed with HTTP 502"},
		{"other status", info, terr(400, "GET", m+"v1", transport.TagInvalidErrorCode), "refused the request for ghcr.io/acme/bot-core/rust-core-engine (HTTP 400 TAG_INVALID)"},
		{"dns", info, &url.Error{Op: "Get", URL: "https://nope.invalid/v2/", Err: &net.OpError{Op: "dial", Err: &net.DNSError{Name: "nope.invalid", Err: "no such host"}}},
			"cannot reach registry ghcr.io: the host name nope.invalid does not resolve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Explain(tt.err, tt.info)
			if !strings.Contains(got.Error(), tt.want) {
				t.Errorf("Explain = %q\nwant it to contain %q", got, tt.want)
			}
			var te *transport.Error
			if errors.As(tt.err, &te) && !errors.As(got, &te) {
				t.Error("the transport error is no longer reachable")
			}
			if strings.Contains(got.Error(), "\n") {
				t.Errorf("not one line: %q", got)
			}
		})
	}
	if Explain(nil, info) != nil {
		t.Error("Explain(nil) != nil")
	}
	plain := errors.New("plain")
	if Explain(plain, info) != plain {
		t.Error("a non-registry error was rewritten")
	}
	once := Explain(terr(401, "GET", m+"v1"), info)
	if Explain(once, harbor) != once {
		t.Error("an explained error was explained again")
	}
}

func TestExplainConnectionRefused(t *testing.T) {
	// A port that was just closed refuses connections.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	info, err := Detect(addr + "/bot")
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := info.Repo("rust-core-engine")
	_, err = remote.List(repo)
	got := Explain(err, info)
	want := "cannot reach registry " + addr + ": the connection was refused"
	if got == nil || !strings.HasPrefix(got.Error(), want) {
		t.Errorf("Explain = %v, want prefix %q", got, want)
	}
}
