package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/alecthomas/kong"
	xhttp "github.com/aquasecurity/trivy/pkg/x/http"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The pipeline runs botcore inside a container where the registry, Fulcio
// and the OIDC issuer listening on the host's 127.0.0.1 are only reachable
// through service aliases, while the references, URLs and credentials still
// name 127.0.0.1 (or the public host names). --connect-to redirects the TCP
// connection only, as curl's --connect-to does, so Host headers, TLS server
// names, keychain lookups and signed references stay what they were.

// connectRule is one HOST:PORT:CONNECT_HOST:CONNECT_PORT. Every field is
// required: curl reads an empty field as "any host" or "any port", and one
// stray "::evil.example:" would then send every connection (registry,
// Fulcio, Rekor, token endpoints) elsewhere. Hosts are lower case, IP
// addresses in netip's canonical form, ports without leading zeros, so
// redirect can compare strings.
type connectRule struct {
	host, port               string
	connectHost, connectPort string
}

// connectToEnv is the variable --connect-to falls back to. botcore deploy
// never reads it (see envResolver): deploy talks to production registries,
// and a variable left in a sourced .env must not redirect them.
const connectToEnv = "BOTCORE_CONNECT_TO"

// connectRules are the rules of the running command. run may be called many
// times in one process (tests), so every parse replaces them.
var connectRules atomic.Pointer[[]connectRule]

var installDialers sync.Once

// AfterApply installs the --connect-to rules before any command runs. Kong
// calls it on the embedded Globals once the flags and env are applied.
func (g *Globals) AfterApply(kctx *kong.Context) error {
	source := "--connect-to"
	for _, p := range kctx.Path {
		if p.Resolved && p.Flag != nil && p.Flag.Name == "connect-to" {
			source = connectToEnv
		}
	}
	rules, err := parseConnectTo(g.ConnectTo, source)
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

// parseConnectTo checks every entry; source names where they came from
// (--connect-to or BOTCORE_CONNECT_TO) in the error.
func parseConnectTo(specs []string, source string) ([]connectRule, error) {
	var rules []connectRule
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		r, err := parseConnectRule(spec)
		if err != nil {
			return nil, fmt.Errorf("invalid %s entry %q: %s", source, spec, err)
		}
		for _, prev := range rules {
			if prev.host == r.host && prev.port == r.port && prev != r {
				return nil, fmt.Errorf("invalid %s entry %q: %s is already redirected to %s, and only the first rule would apply, so keep one", source, spec,
					net.JoinHostPort(r.host, r.port), net.JoinHostPort(prev.connectHost, prev.connectPort))
			}
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// The errors of parseConnectRule complete "invalid --connect-to entry X: ".
const connectToForm = "give HOST:PORT:CONNECT_HOST:CONNECT_PORT such as 127.0.0.1:5000:registry:5000 (IPv6 addresses in brackets)"

func parseConnectRule(spec string) (connectRule, error) {
	fields, err := splitConnectTo(spec)
	if err != nil {
		return connectRule{}, err
	}
	names := [4]string{"HOST", "PORT", "CONNECT_HOST", "CONNECT_PORT"}
	for i, f := range fields {
		if f == "" {
			return connectRule{}, fmt.Errorf("%s is empty, and botcore refuses curl's empty-field wildcards because they redirect every connection, so %s", names[i], connectToForm)
		}
	}
	var out [4]string
	for i, f := range fields {
		var ok bool
		if i%2 == 0 {
			out[i], ok = canonicalHost(f)
			if !ok {
				return connectRule{}, fmt.Errorf("%s %q is not a host name or an IP address, so %s", names[i], f, connectToForm)
			}
		} else {
			n, err := strconv.ParseUint(f, 10, 16)
			if err != nil || n == 0 {
				return connectRule{}, fmt.Errorf("%s %q is not a number from 1 to 65535", names[i], f)
			}
			out[i] = strconv.FormatUint(n, 10)
		}
	}
	return connectRule{host: out[0], port: out[1], connectHost: out[2], connectPort: out[3]}, nil
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
				return parts, fmt.Errorf("it has more than four colon-separated fields, so %s", connectToForm)
			}
			parts[n] = spec[start:i]
			n++
			start = i + 1
		}
		if depth < 0 || depth > 1 {
			return parts, fmt.Errorf("its brackets do not match, so %s", connectToForm)
		}
	}
	if depth != 0 {
		return parts, fmt.Errorf("its brackets do not match, so %s", connectToForm)
	}
	if n != 3 {
		return parts, fmt.Errorf("it does not have four colon-separated fields, so %s", connectToForm)
	}
	parts[3] = spec[start:]
	return parts, nil
}

// canonicalHost accepts "[IPv6]", an IPv4 address or a DNS name (letters,
// digits, '-' and, as container and service aliases have them, '_'), and
// returns it in the form redirect compares.
func canonicalHost(h string) (string, bool) {
	if inner, ok := strings.CutPrefix(h, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		a, err := netip.ParseAddr(inner)
		if !ok || err != nil || !a.Is6() {
			return "", false
		}
		return a.String(), true
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.String(), a.Is4()
	}
	if len(h) > 253 {
		return "", false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	// A name ending in a numeric label would be read as a (bad) IPv4 address.
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		return "", false
	}
	return strings.ToLower(h), true
}

// redirect returns where a dial to addr ("host:port") goes: the first
// matching rule wins.
func redirect(addr string) string {
	rules := connectRules.Load()
	if rules == nil || len(*rules) == 0 {
		return addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.String()
	}
	for _, r := range *rules {
		if strings.EqualFold(r.host, host) && r.port == port {
			return net.JoinHostPort(r.connectHost, r.connectPort)
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

// installConnectTo wraps the dialers of the default transports every client
// in this process is built from: net/http's (Fulcio, Rekor, OIDC token
// requests, and the clones cosign makes of it), go-containerregistry's (all
// registry calls) and Trivy's, which builds each client from a clone with a
// dialer of its own (the vulnerability DB download). Clones made later
// inherit the wrapped dialer.
func installConnectTo() {
	for _, rt := range []http.RoundTripper{http.DefaultTransport, remote.DefaultTransport} {
		if tr, ok := rt.(*http.Transport); ok {
			redirectDials(tr)
		}
	}
	xhttp.SetDefaultTransport(trivyTransport{xhttp.NewTransport(xhttp.Options{})})
}

func redirectDials(tr *http.Transport) {
	base := tr.DialContext
	if base == nil {
		base = (&net.Dialer{}).DialContext
	}
	tr.DialContext = redirectingDialer(base)
}

// trivyTransport is Trivy's default transport with its dialer redirected.
type trivyTransport struct{ xhttp.Transport }

func (t trivyTransport) Build(opts ...xhttp.TransportOption) http.RoundTripper {
	return t.Transport.Build(append(opts, redirectDials)...)
}
