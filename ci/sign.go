package main

import (
	"context"
	"fmt"

	"dagger/bot-core/internal/dagger"

	"golang.org/x/sync/errgroup"

	"github.com/bot-core/delivery/pipelines/release"
	"github.com/bot-core/delivery/pipelines/signpolicy"
)

// signer is how build-all signs what it published: a cosign key, an OIDC
// token, or GitHub Actions' token request pair (see signpolicy.Choose).
type signer struct {
	key, keyPassword         *dagger.Secret
	idToken                  *dagger.Secret
	requestURL, requestToken *dagger.Secret
	fulcioURL, rekorURL      string
	noTlog, noSCT            bool
	// hostServices are tunnels to a private Fulcio or token endpoint on the
	// caller's machine.
	hostServices []*dagger.Service
}

// inputs says which credentials were given, for the plan to check.
func (s signer) inputs() signpolicy.Inputs {
	return signpolicy.Inputs{Key: s.key != nil, KeyPassword: s.keyPassword != nil, IDToken: s.idToken != nil,
		RequestURL: s.requestURL != nil, RequestToken: s.requestToken != nil}
}

// all signs every service's index and platform manifests by digest and
// attests each platform's SBOM, one service per job. It runs between the
// push and the tags, so a failure leaves every tag where it was.
func (s signer) all(ctx context.Context, pub registryStage, r *run) error {
	tool := s.tool(pub, r)
	eg, gctx := errgroup.WithContext(ctx)
	for _, a := range r.arts {
		eg.Go(func() error {
			rec := &a.record
			rec.RecordSignatures()
			if _, err := tool.Sign(gctx, refs(rec.Image, rec.Signed)); err != nil {
				return fmt.Errorf("sign %s: %w", a.service.Name, err)
			}
			for _, p := range r.plan.Platforms {
				ref := rec.Image + "@" + rec.Platforms[p]
				if _, err := tool.Attest(gctx, ref, a.sboms[p], dagger.SupplychainSignerAttestOpts{PredicateType: "spdxjson"}); err != nil {
					return fmt.Errorf("attest the SBOM of %s (%s): %w", a.service.Name, p, err)
				}
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	r.rel.Signing = release.NewSigning(string(r.plan.Signing), s.fulcio(), s.rekor(), !s.noTlog, !s.noSCT)
	return nil
}

// tool is the supply-chain module's signer with the registry's credentials
// and every tunnel it needs.
func (s signer) tool(pub registryStage, r *run) *dagger.SupplychainSigner {
	sg := pub.m.supplychain().Signer(dagger.SupplychainSignerOpts{
		Key: s.key, KeyPassword: s.keyPassword, OidcToken: s.idToken, OidcRequestURL: s.requestURL, OidcRequestToken: s.requestToken,
		FulcioURL: s.fulcio(), RekorURL: s.rekor(), NoTlog: s.noTlog, InsecureIgnoreSct: s.noSCT,
	}).WithRegistryAuth(r.plan.Registry.Prefix(), dagger.SupplychainSignerWithRegistryAuthOpts{Username: pub.username, Password: pub.password})
	if pub.tunnel != nil {
		// References name the registry as the user gave it; the tunnel carries them.
		sg = sg.WithTunnel(pub.tunnel, dagger.SupplychainSignerWithTunnelOpts{Hosts: []string{r.plan.Registry.Registry}})
	}
	for _, svc := range s.hostServices {
		sg = sg.WithTunnel(svc)
	}
	return sg
}

func (s signer) fulcio() string { return or(s.fulcioURL, signpolicy.DefaultFulcioURL) }
func (s signer) rekor() string  { return or(s.rekorURL, signpolicy.DefaultRekorURL) }

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// refs turns digests into references in repo.
func refs(repo string, digests []string) []string {
	out := make([]string, len(digests))
	for i, d := range digests {
		out[i] = repo + "@" + d
	}
	return out
}
