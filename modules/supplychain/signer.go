package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"dagger/supplychain/internal/dagger"
)

// Signer signs and attests images in a registry with cosign.
//
// Keylessly (Fulcio, with an OIDC token) or with a key. Chain
// with-registry-auth and with-tunnel as needed, then sign or attest.
type Signer struct {
	Key               *dagger.Secret // +private
	KeyPassword       *dagger.Secret // +private
	OidcToken         *dagger.Secret // +private
	OidcRequestUrl    *dagger.Secret // +private
	OidcRequestToken  *dagger.Secret // +private
	FulcioUrl         string         // +private
	RekorUrl          string         // +private
	NoTlog            bool           // +private
	InsecureIgnoreSct bool           // +private
	// Registry credentials (WithRegistryAuth).
	Registry         string         // +private
	RegistryUsername string         // +private
	RegistryPassword *dagger.Secret // +private
	// Tunnels (WithTunnel): aliases, their services, and connect-to rules
	// HOST:PORT:ALIAS:PORT.
	TunnelAliases  []string          // +private
	TunnelServices []*dagger.Service // +private
	ConnectTo      []string          // +private
	// The tool container.
	Tools *dagger.Container // +private
}

// Signer says how to sign: with a key, or keylessly with an OIDC token.
//
// With --key (and --key-password), or keylessly with an OIDC identity
// token (--oidc-token, or GitHub Actions' token endpoint through
// --oidc-request-url and --oidc-request-token) and a Fulcio certificate.
// Then chain with-registry-auth / with-tunnel, and sign or attest.
func (m *Supplychain) Signer(
	// Cosign private key (PEM), e.g. env:COSIGN_KEY or file:cosign.key.
	// +optional
	key *dagger.Secret,
	// Password of an encrypted --key.
	// +optional
	keyPassword *dagger.Secret,
	// OIDC identity token for keyless signing.
	// +optional
	oidcToken *dagger.Secret,
	// GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL, for keyless signing in a workflow.
	// +optional
	oidcRequestUrl *dagger.Secret,
	// GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_TOKEN.
	// +optional
	oidcRequestToken *dagger.Secret,
	// Fulcio that certifies keyless signatures (default: the public
	// https://fulcio.sigstore.dev).
	// +optional
	fulcioUrl string,
	// Rekor transparency log (default: the public https://rekor.sigstore.dev).
	// +optional
	rekorUrl string,
	// Sign without recording the signatures in the transparency log;
	// verifiers then need --insecure-ignore-tlog.
	// +optional
	noTlog bool,
	// Accept keyless certificates without a certificate-transparency
	// timestamp, as a private Fulcio without a CT log issues them.
	// +optional
	insecureIgnoreSct bool,
) *Signer {
	return &Signer{
		Key: key, KeyPassword: keyPassword,
		OidcToken: oidcToken, OidcRequestUrl: oidcRequestUrl, OidcRequestToken: oidcRequestToken,
		FulcioUrl: fulcioUrl, RekorUrl: rekorUrl,
		NoTlog: noTlog, InsecureIgnoreSct: insecureIgnoreSct,
		Tools: m.Tools(),
	}
}

// WithRegistryAuth sets the credentials of the images' registry.
//
// One registry: a later call replaces it.
func (s *Signer) WithRegistryAuth(
	// Registry host (e.g. ghcr.io) or the prefix the images are under
	// (e.g. ghcr.io/acme/bot-core); the credentials are only ever sent there.
	registry string,
	// User name.
	// +optional
	username string,
	// Password or token.
	// +optional
	password *dagger.Secret,
) *Signer {
	c := *s
	c.Registry, c.RegistryUsername, c.RegistryPassword = registry, username, password
	return &c
}

// WithTunnel reaches a service on the caller's machine.
//
// E.g. a loopback registry, a private Fulcio or an OIDC token endpoint:
// `with-tunnel --service tcp://127.0.0.1:5000`. The service is bound under
// an alias and connections to the given host:port names go through it, so
// references, URLs and TLS names stay what you gave.
//
// +cache="session"
func (s *Signer) WithTunnel(
	ctx context.Context,
	// The service, e.g. tcp://127.0.0.1:5000 from the command line.
	service *dagger.Service,
	// HOST:PORT names that mean this service (default: 127.0.0.1:<port> and
	// localhost:<port>, where the service answers on the caller's machine).
	// +optional
	hosts []string,
) (*Signer, error) {
	via, err := s.tunnels().add(ctx, service, hosts)
	if err != nil {
		return nil, err
	}
	c := *s
	c.TunnelAliases, c.TunnelServices, c.ConnectTo = via.aliases, via.services, via.connect
	return &c, nil
}

func (s *Signer) tunnels() tunnels {
	return tunnels{aliases: s.TunnelAliases, services: s.TunnelServices, connect: s.ConnectTo}
}

// tunnels are services on the caller's machine the tools reach by their
// original host:port names (botcore's BOTCORE_CONNECT_TO, curl's
// --connect-to semantics: only the TCP connection is redirected, so Host
// headers, TLS server names, keychain lookups and signed references stay
// what they were).
type tunnels struct {
	aliases  []string
	services []*dagger.Service
	connect  []string // HOST:PORT:ALIAS:PORT
}

// add returns t with svc bound under the next alias.
func (t tunnels) add(ctx context.Context, svc *dagger.Service, hosts []string) (tunnels, error) {
	alias := "tunnel" + strconv.Itoa(len(t.aliases))
	if _, err := svc.Start(ctx); err != nil {
		return t, fmt.Errorf("tunnel %s: %w", alias, err)
	}
	endpoint, err := svc.Endpoint(ctx)
	if err != nil {
		return t, fmt.Errorf("tunnel %s: %w", alias, err)
	}
	_, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return t, fmt.Errorf("tunnel %s: endpoint %q: %w", alias, endpoint, err)
	}
	if len(hosts) == 0 { // a host service: it answers on the caller's loopback
		hosts = []string{"127.0.0.1:" + port, "localhost:" + port}
	}
	out := tunnels{
		aliases:  append(slices.Clone(t.aliases), alias),
		services: append(slices.Clone(t.services), svc),
		connect:  slices.Clone(t.connect),
	}
	for _, h := range hosts {
		host, hport, err := net.SplitHostPort(h)
		if err != nil || host == "" || hport == "" {
			return t, fmt.Errorf("--hosts %q: give HOST:PORT, e.g. fulcio.example.com:443", h)
		}
		out.connect = append(out.connect, h+":"+alias+":"+port)
	}
	return out, nil
}

func (t tunnels) apply(c *dagger.Container) *dagger.Container {
	for i, alias := range t.aliases {
		c = c.WithServiceBinding(alias, t.services[i])
	}
	if len(t.connect) > 0 {
		c = c.WithEnvVariable("BOTCORE_CONNECT_TO", strings.Join(t.connect, ","))
	}
	return c
}

// registryAuth hands the registry credentials to botcore the way its
// keychain reads them: the password only ever as a secret variable.
func registryAuth(c *dagger.Container, registry, username string, password *dagger.Secret) *dagger.Container {
	if registry != "" {
		c = c.WithEnvVariable("DOCKER_REGISTRY", registry)
	}
	if password != nil {
		c = c.WithEnvVariable("DOCKER_USERNAME", username).
			WithSecretVariable("DOCKER_PASSWORD", password)
	}
	return c
}

func (s *Signer) validate() error {
	keyless := s.OidcToken != nil || s.OidcRequestUrl != nil || s.OidcRequestToken != nil
	switch {
	case s.Key != nil && keyless:
		return errors.New("give either --key (key-based signing) or an OIDC token (keyless), not both")
	case s.Key == nil && !keyless:
		return errors.New("no way to sign: give signer --key (and --key-password), or --oidc-token, or --oidc-request-url with --oidc-request-token")
	case (s.OidcRequestUrl == nil) != (s.OidcRequestToken == nil):
		return errors.New("--oidc-request-url and --oidc-request-token go together (GitHub Actions passes both)")
	case s.OidcToken != nil && s.OidcRequestUrl != nil:
		return errors.New("give either --oidc-token or --oidc-request-url/--oidc-request-token, not both")
	case s.KeyPassword != nil && s.Key == nil:
		return errors.New("--key-password without --key")
	}
	return nil
}

// container is the tool container set up to sign: tunnels, registry
// credentials, the signing secrets, and a per-run variable so that the
// engine never replays a cached signature (it may have gone to another
// registry, or been deleted). args are the flags sign and attest share.
func (s *Signer) container() (*dagger.Container, []string, error) {
	if err := s.validate(); err != nil {
		return nil, nil, err
	}
	c := s.tunnels().apply(s.Tools).
		WithEnvVariable("BOTCORE_RUN", time.Now().UTC().Format(time.RFC3339Nano))
	c = registryAuth(c, s.Registry, s.RegistryUsername, s.RegistryPassword)
	var args []string
	if s.FulcioUrl != "" {
		args = append(args, "--fulcio-url", s.FulcioUrl)
	}
	if s.RekorUrl != "" {
		args = append(args, "--rekor-url", s.RekorUrl)
	}
	if s.NoTlog {
		args = append(args, "--tlog-upload=false")
	}
	if s.InsecureIgnoreSct {
		args = append(args, "--insecure-ignore-sct")
	}
	switch {
	case s.Key != nil:
		c = c.WithSecretVariable("COSIGN_KEY", s.Key)
		if s.KeyPassword != nil {
			c = c.WithSecretVariable("COSIGN_PASSWORD", s.KeyPassword)
		}
		args = append(args, "--key", "env:COSIGN_KEY")
	case s.OidcToken != nil:
		c = c.WithSecretVariable("SIGSTORE_ID_TOKEN", s.OidcToken)
	default:
		c = c.WithSecretVariable("ACTIONS_ID_TOKEN_REQUEST_URL", s.OidcRequestUrl).
			WithSecretVariable("ACTIONS_ID_TOKEN_REQUEST_TOKEN", s.OidcRequestToken)
	}
	return c, args, nil
}

// Sign signs images by digest, in one botcore sign run.
//
// REGISTRY/REPOSITORY@sha256:... (tags are refused). Returns botcore's
// table of signatures (JSON with --json-output).
//
// +cache="never"
func (s *Signer) Sign(
	ctx context.Context,
	// Images to sign, by digest.
	refs []string,
	// With an image index, also sign each platform manifest in it.
	// +optional
	recursive bool,
	// Print JSON instead of a table.
	// +optional
	jsonOutput bool,
) (string, error) {
	if len(refs) == 0 {
		return "", errors.New("nothing to sign: give --refs REGISTRY/REPOSITORY@sha256:...")
	}
	c, args, err := s.container()
	if err != nil {
		return "", err
	}
	if recursive {
		args = append(args, "--recursive")
	}
	return run(ctx, c, "sign", args, jsonOutput, refs...)
}

// Attest attaches a signed attestation (e.g. an SBOM) to an image digest.
//
// An in-toto attestation of the predicate (e.g. the SPDX SBOM from sbom).
// Returns botcore's table of attestations (JSON with --json-output).
//
// +cache="never"
func (s *Signer) Attest(
	ctx context.Context,
	// Image to attest, by digest: REGISTRY/REPOSITORY@sha256:...
	ref string,
	// The predicate, e.g. an SPDX JSON SBOM.
	predicate *dagger.File,
	// Predicate type: spdxjson, spdx, cyclonedx, slsaprovenance,
	// slsaprovenance1, link, vuln, openvex, custom, or a URI.
	// +default="spdxjson"
	predicateType string,
	// Print JSON instead of a table.
	// +optional
	jsonOutput bool,
) (string, error) {
	c, args, err := s.container()
	if err != nil {
		return "", err
	}
	c = c.WithMountedFile("/predicate/predicate", predicate)
	args = append(args, "--type", predicateType, "--predicate", "/predicate/predicate")
	return run(ctx, c, "attest", args, jsonOutput, ref)
}

// run runs one botcore command and returns its stdout; a failure returns
// the end of its stderr, which says what went wrong and what to do.
func run(ctx context.Context, c *dagger.Container, verb string, flags []string, json bool, refs ...string) (string, error) {
	args := []string{botcoreBin, verb}
	if json {
		args = append(args, "--json")
	}
	args = append(append(append(args, flags...), "--"), refs...)
	out, err := c.WithExec(args).Stdout(ctx)
	var exe *dagger.ExecError
	if errors.As(err, &exe) {
		return "", fmt.Errorf("botcore %s failed (exit code %d):\n%s", verb, exe.ExitCode, lastLines(exe.Stderr, 40))
	}
	return out, err
}
