package main

import (
	"context"
	"errors"
	"time"

	"dagger/supplychain/internal/dagger"
)

// Verify checks an image's cosign signature against a key or an identity.
//
// And with --attestation-type an attestation. The policy is a public key,
// or for keyless signatures the certificate's identity and OIDC issuer. A
// tag is resolved to its digest first. Returns botcore verify's report;
// fails when the image does not verify.
//
// +cache="never"
func (m *Supplychain) Verify(
	ctx context.Context,
	// Image to verify: REGISTRY/REPOSITORY:TAG or @sha256:...
	ref string,
	// Public key (PEM) of key-based signatures, e.g. file:cosign.pub.
	// +optional
	key *dagger.Secret,
	// Keyless: the signer the certificate must name, e.g. an email or
	// https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.3.
	// +optional
	certificateIdentity string,
	// Keyless: the OIDC issuer that vouched for the signer, e.g.
	// https://token.actions.githubusercontent.com.
	// +optional
	certificateOidcIssuer string,
	// Keyless: PEM root certificate (and intermediates) of a private Fulcio
	// (default: the public-good Sigstore root).
	// +optional
	caRoots *dagger.File,
	// Keyless: a regular expression the signer must match instead.
	// +optional
	certificateIdentityRegexp string,
	// Keyless: a regular expression the issuer must match instead.
	// +optional
	certificateOidcIssuerRegexp string,
	// Also require a valid attestation of this predicate type (spdxjson,
	// cyclonedx, slsaprovenance, ... or a URI) by the same signer.
	// +optional
	attestationType string,
	// With an image index, also verify each platform manifest's own signature.
	// +optional
	recursive bool,
	// Accept signatures without a transparency-log entry (signed with no-tlog).
	// +optional
	insecureIgnoreTlog bool,
	// Keyless: accept certificates without a certificate-transparency
	// timestamp (a private Fulcio without a CT log).
	// +optional
	insecureIgnoreSct bool,
	// Rekor transparency log to check against (default: the public one).
	// +optional
	rekorUrl string,
	// Registry user name, for a private registry.
	// +optional
	registryUsername string,
	// Registry password or token.
	// +optional
	registryPassword *dagger.Secret,
	// Tunnels to services on the caller's machine (a loopback registry),
	// e.g. tcp://127.0.0.1:5000, reached as 127.0.0.1:<port> and localhost:<port>.
	// +optional
	hostServices []*dagger.Service,
	// Print JSON instead of text.
	// +optional
	jsonOutput bool,
) (string, error) {
	if key != nil && (certificateIdentity != "" || certificateIdentityRegexp != "") {
		return "", errors.New("give either --key (key-based signatures) or --certificate-identity (keyless), not both")
	}
	var via tunnels
	for _, svc := range hostServices {
		var err error
		if via, err = via.add(ctx, svc, nil); err != nil {
			return "", err
		}
	}
	c := via.apply(m.Tools()).
		WithEnvVariable("BOTCORE_RUN", time.Now().UTC().Format(time.RFC3339Nano))
	c = registryAuth(c, "", registryUsername, registryPassword)
	var args []string
	if key != nil {
		c = c.WithSecretVariable("COSIGN_PUBLIC_KEY", key)
		args = append(args, "--key", "env:COSIGN_PUBLIC_KEY")
	}
	for _, f := range []struct{ flag, v string }{
		{"--certificate-identity", certificateIdentity},
		{"--certificate-oidc-issuer", certificateOidcIssuer},
		{"--certificate-identity-regexp", certificateIdentityRegexp},
		{"--certificate-oidc-issuer-regexp", certificateOidcIssuerRegexp},
		{"--attestation-type", attestationType},
		{"--rekor-url", rekorUrl},
	} {
		if f.v != "" {
			args = append(args, f.flag, f.v)
		}
	}
	if caRoots != nil {
		c = c.WithMountedFile("/trust/ca-roots.pem", caRoots)
		args = append(args, "--ca-roots", "/trust/ca-roots.pem")
	}
	for _, f := range []struct {
		flag string
		on   bool
	}{
		{"--recursive", recursive},
		{"--insecure-ignore-tlog", insecureIgnoreTlog},
		{"--insecure-ignore-sct", insecureIgnoreSct},
	} {
		if f.on {
			args = append(args, f.flag)
		}
	}
	return run(ctx, c, "verify", args, jsonOutput, ref)
}
