package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"dagger/bot-core/builder"
	"dagger/bot-core/internal/dagger"

	"golang.org/x/sync/errgroup"

	"github.com/bot-core/delivery/pipelines/provenance"
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
// attests each platform manifest's SBOM, SLSA provenance and vulnerability
// scan (release.AttestationTypes), one service per job. It runs between the
// push and the tags, so a failure leaves every tag where it was.
func (s signer) all(ctx context.Context, pub registryStage, r *run) error {
	tool := s.tool(pub, r)
	prov, err := newProvenance(ctx, pub.m, r)
	if err != nil {
		return err
	}
	eg, gctx := errgroup.WithContext(ctx)
	for _, a := range r.arts {
		eg.Go(func() error {
			rec := &a.record
			rec.RecordSignatures()
			if _, err := tool.Sign(gctx, refs(rec.Image, rec.Signed)); err != nil {
				return fmt.Errorf("sign %s: %w", a.service.Name, err)
			}
			predicates, err := prov.predicates(gctx, a)
			if err != nil {
				return err
			}
			// Platforms side by side, but one manifest's attestations one
			// after another: each attest rewrites the manifest's single .att
			// image (read, append, write), so concurrent ones would drop
			// each other's.
			ag, actx := errgroup.WithContext(gctx)
			for _, p := range r.plan.Platforms {
				ref := rec.Image + "@" + rec.Platforms[p]
				ag.Go(func() error {
					for _, t := range rec.Attestations {
						pred := map[string]*dagger.File{"spdxjson": a.sboms[p], provenance.CosignType: predicates[p], "vuln": a.vulns[p]}[t]
						if _, err := tool.Attest(actx, ref, pred, dagger.SupplychainSignerAttestOpts{PredicateType: t}); err != nil {
							return fmt.Errorf("attest the %s of %s (%s): %w", attestationName[t], a.service.Name, p, err)
						}
					}
					return nil
				})
			}
			return ag.Wait()
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	r.rel.Signing = release.NewSigning(string(r.plan.Signing), s.fulcio(), s.rekor(), !s.noTlog, !s.noSCT)
	return nil
}

// attestationName words a cosign predicate type in errors.
var attestationName = map[string]string{"spdxjson": "SBOM", provenance.CosignType: "SLSA provenance", "vuln": "vulnerability scan"}

// provenanceRun is what every provenance of one run shares: the request,
// the builder and this invocation. Its finish is when signing began, the
// build, scan and push being done.
type provenanceRun struct {
	m     *BotCore
	build provenance.Build
	// buildPlatform is where the builders ran platform-free steps.
	buildPlatform dagger.Platform
}

func newProvenance(ctx context.Context, m *BotCore, r *run) (provenanceRun, error) {
	buildPlatform, err := dag.DefaultPlatform(ctx)
	if err != nil {
		return provenanceRun{}, err
	}
	engine, err := dag.Version(ctx)
	if err != nil {
		return provenanceRun{}, err
	}
	var names []string
	for _, a := range r.arts {
		names = append(names, a.service.Name)
	}
	q := r.req
	return provenanceRun{m: m, buildPlatform: buildPlatform, build: provenance.Build{
		Version: r.plan.Version, Services: names, Platforms: r.plan.Platforms, Registry: r.plan.Registry.Prefix(),
		GitRef: q.GitRef, GitSHA: q.GitSHA, SourceURL: q.SourceURL, SourceDateEpoch: int64(q.Epoch),
		Severities: r.plan.Severities, IgnoreUnfixed: r.plan.IgnoreUnfixed, PipIndexes: r.pipIndexes, NpmRegistry: r.npmRegistry, CargoRegistry: r.cargoRegistry,
		BuilderVersion: map[string]string{"dagger": engine},
		Tool:           r.rel.Tool,
		InvocationID:   "urn:build-all:" + strings.ToLower(rand.Text()),
		StartedOn:      r.started, FinishedOn: time.Now().UTC(),
	}}, nil
}

// predicates are a's provenance per platform, each naming the base images
// that platform's build started from.
func (p provenanceRun) predicates(ctx context.Context, a *artifact) (map[string]*dagger.File, error) {
	out := map[string]*dagger.File{}
	for _, plat := range p.build.Platforms {
		bases, err := builder.Bases(ctx, builder.Spec{Service: a.service, Source: p.m.Source.Directory(a.service.Path), Platform: dagger.Platform(plat), BuildPlatform: p.buildPlatform, Images: p.m.images()})
		if err != nil {
			return nil, err
		}
		if a.service.HealthCommand == nil {
			// botcore-probe, compiled in the Go image, is in the image too.
			bases = append(bases, builder.Base{Ref: p.m.GoImage, Platform: p.buildPlatform})
		}
		b := p.build
		b.BaseImages = nil
		for _, base := range bases {
			ref, err := base.Resolve(ctx, dag)
			if err != nil {
				return nil, fmt.Errorf("provenance of %s (%s): %w", a.service.Name, plat, err)
			}
			b.BaseImages = append(b.BaseImages, provenance.BaseImage{Name: base.Ref, Ref: ref})
		}
		js, err := provenance.JSON(b)
		if err != nil {
			return nil, fmt.Errorf("provenance of %s (%s): %w", a.service.Name, plat, err)
		}
		out[plat] = dag.File("provenance.json", string(js))
	}
	return out, nil
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
