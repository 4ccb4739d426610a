package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The pipeline runs botcore inside a container where the registry, Fulcio
// and the OIDC issuer listening on the host's 127.0.0.1 are only reachable
// through service aliases, while the references, URLs and credentials still
// name 127.0.0.1 (or the public host names). --connect-to redirects the TCP
// connection only, as curl's --connect-to does, so Host headers, TLS server
// names, keychain lookups and signed references stay what they were.

// connectRule is one HOST:PORT:CONNECT_HOST:CONNECT_PORT; an empty field
// matches any host or port (left side) or keeps it (right side).
type connectRule struct {
	host, port               string
	connectHost, connectPort string
}

// connectRules are the rules of the running command. run may be called many
// times in one process (tests), so every parse replaces them.
var connectRules atomic.Pointer[[]connectRule]

var installDialers sync.Once

// AfterApply installs the --connect-to rules before any command runs. Kong
// calls it on the embedded Globals once the flags and env are applied.
func (g *Globals) AfterApply() error {
	rules, err := parseConnectTo(g.ConnectTo)
	if err != nil {
		return err
	}
	old := connectRules.Swap(&rules)
	if len(rules) > 0 {
		installDialers.Do(installConnectTo)
	}
	if old != nil && !slices.Equal(*old, rules) {
		// Idle keep-alive connections were dialed under the old rules.
		for _, rt := range []http.RoundTripper{http.DefaultTransport, remote.DefaultTransport} {
			if tr, ok := rt.(*http.Transport); ok {
				tr.CloseIdleConnections()
			}
		}
	}
	return nil
}

func parseConnectTo(specs []string) ([]connectRule, error) {
	var rules []connectRule
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		parts, err := splitConnectTo(spec)
		if err != nil {
			return nil, fmt.Errorf("invalid --connect-to %q: %v; give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000", spec, err)
		}
		for _, i := range []int{1, 3} {
			if p := parts[i]; p != "" {
				if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
					return nil, fmt.Errorf("invalid --connect-to %q: the port %q is not a number from 1 to 65535", spec, p)
				}
			}
		}
		rules = append(rules, connectRule{host: strings.ToLower(parts[0]), port: parts[1], connectHost: parts[2], connectPort: parts[3]})
	}
	return rules, nil
}

// splitConnectTo splits on the three colons outside [IPv6] brackets.
func splitConnectTo(spec string) ([4]string, error) {
	var parts [4]string
	n, depth, start := 0, 0, 0
	for i := 0; i < len(spec); i++ {
		switch spec[i] {
		case '[':
			depth++
		case ']':
			depth--
		case ':':
			if depth != 0 {
				continue
			}
			if n == 3 {
				return parts, fmt.Errorf("it has more than four fields")
			}
			parts[n] = spec[start:i]
			n++
			start = i + 1
		}
	}
	if n != 3 || depth != 0 {
		return parts, fmt.Errorf("it does not have four colon-separated fields")
	}
	parts[3] = spec[start:]
	for i := range parts {
		parts[i] = strings.TrimSuffix(strings.TrimPrefix(parts[i], "["), "]")
	}
	return parts, nil
}

// redirect returns where a dial to addr ("host:port") goes: the first
// matching rule wins, as in curl.
func redirect(addr string) string {
	rules := connectRules.Load()
	if rules == nil || len(*rules) == 0 {
		return addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	for _, r := range *rules {
		if (r.host == "" || strings.EqualFold(r.host, host)) && (r.port == "" || r.port == port) {
			if r.connectHost != "" {
				host = r.connectHost
			}
			if r.connectPort != "" {
				port = r.connectPort
			}
			return net.JoinHostPort(host, port)
		}
	}
	return addr
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func redirectingDialer(base dialFunc) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return base(ctx, network, redirect(addr))
	}
}

// installConnectTo wraps the dialers of the two default transports every
// client in this process is built from: net/http's (Fulcio, Rekor, OIDC
// token requests, and the clones cosign makes of it) and
// go-containerregistry's (all registry calls). Clones made later inherit
// the wrapped dialer.
func installConnectTo() {
	for _, rt := range []http.RoundTripper{http.DefaultTransport, remote.DefaultTransport} {
		tr, ok := rt.(*http.Transport)
		if !ok {
			continue
		}
		base := tr.DialContext
		if base == nil {
			base = (&net.Dialer{}).DialContext
		}
		tr.DialContext = redirectingDialer(base)
	}
}
