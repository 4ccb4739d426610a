package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"dagger/bot-core/internal/dagger"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/bot-core/delivery/pipelines/plan"
	"github.com/bot-core/delivery/pipelines/publish"
	"github.com/bot-core/delivery/pipelines/release"
	"github.com/bot-core/delivery/pipelines/tags"
)

// request is what a release is computed from: the version or git state, and
// the source date.
type request struct {
	Version   string
	GitRef    string
	GitSHA    string
	PR        int
	SourceURL string
	Epoch     int
}

func (r request) tags() ([]string, error) {
	if r.Version == "" && r.GitRef == "" && r.PR == 0 {
		return nil, errors.New("nothing to tag: give --version (e.g. v1.0.0), or --git-ref/--git-sha/--pr as CI does")
	}
	// Compute validates the version (semver) and the SHA itself.
	return tags.Compute(tags.Source{Version: r.Version, Ref: r.GitRef, SHA: r.GitSHA, PR: r.PR})
}

func (r request) created() (time.Time, error) {
	if r.Epoch < 0 {
		return time.Time{}, fmt.Errorf("--source-date-epoch %d: must be seconds since 1970, not negative", r.Epoch)
	}
	return tags.CreatedFromEpoch(strconv.Itoa(r.Epoch))
}

func (r request) labels() (map[string]string, error) {
	created, err := r.created()
	if err != nil {
		return nil, err
	}
	if r.Version != "" {
		if err := tags.ValidateVersion(r.Version); err != nil {
			return nil, err
		}
	}
	return tags.Labels(tags.Meta{Version: r.Version, Revision: r.GitSHA, Source: r.SourceURL, Created: created}), nil
}

// BuildAll builds every service for every platform concurrently, scans each
// image with Trivy (a failing gate stops the release before anything is
// pushed) and makes its SPDX SBOM with Syft. It returns a directory with
// release.json, summary.md, sarif/, scan/ and sbom/ (one file per service and
// platform) and, when nothing is published, images/ with each service as an
// OCI image layout of all its platforms. With --registry it publishes every
// service as one multi-platform index by digest, signs each index and
// platform manifest and attests its SBOM (keyless with an OIDC token, or with
// --cosign-key), and only then moves the tags.
//
// +cache="never"
func (m *BotCore) BuildAll(
	ctx context.Context,
	// Release version (semver, e.g. v1.0.0): tags vX.Y.Z, X.Y.Z, X.Y, X and latest.
	// +optional
	version string,
	// Only these services (default: every service in services.yaml).
	// +optional
	services []string,
	// Comma-separated target platforms.
	// +default="linux/amd64,linux/arm64"
	platforms string,
	// Registry prefix to publish to, e.g. ghcr.io/acme/bot-core. Without it nothing is pushed.
	// +optional
	registry string,
	// Registry user name.
	// +optional
	registryUsername string,
	// Registry password or token.
	// +optional
	registryPassword *dagger.Secret,
	// Tunnel to a registry on the caller's machine, e.g. tcp://127.0.0.1:5000:
	// Dagger functions cannot reach the caller's localhost otherwise.
	// +optional
	registryService *dagger.Service,
	// Build, scan and export only, even when --registry is given (pull requests).
	// +optional
	buildOnly bool,
	// Git ref being built (refs/heads/main, refs/tags/v1.2.3, refs/pull/7/merge), as CI passes it.
	// +optional
	gitRef string,
	// Commit SHA being built.
	// +optional
	gitSha string,
	// Pull request number: tags pr-N.
	// +optional
	pr int,
	// Repository URL for the org.opencontainers.image.source label.
	// +optional
	sourceUrl string,
	// SOURCE_DATE_EPOCH (the commit time): file times and the created label.
	// +optional
	sourceDateEpoch int,
	// Vulnerability severities that fail the release (Trivy).
	// +default="HIGH,CRITICAL"
	severity string,
	// Let vulnerabilities without a fixed version pass the gate.
	// +optional
	ignoreUnfixed bool,
	// Trivy vulnerability database to use offline: a directory holding
	// trivy.db and metadata.json. Without it the database is downloaded and
	// kept in a cache volume.
	// +optional
	trivyDb *dagger.Directory,
	// Cosign private key (e.g. env:COSIGN_KEY) for key-based signing.
	// +optional
	cosignKey *dagger.Secret,
	// Password of --cosign-key.
	// +optional
	cosignPassword *dagger.Secret,
	// OIDC identity token for keyless signing.
	// +optional
	oidcToken *dagger.Secret,
	// GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL, for keyless signing in a workflow.
	// +optional
	oidcRequestUrl *dagger.Secret,
	// GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_TOKEN.
	// +optional
	oidcRequestToken *dagger.Secret,
	// Fulcio (keyless certificates).
	// +default="https://fulcio.sigstore.dev"
	fulcioUrl string,
	// Rekor transparency log.
	// +default="https://rekor.sigstore.dev"
	rekorUrl string,
	// Sign without writing to the transparency log (recorded in release.json).
	// +optional
	noTlog bool,
	// Accept keyless certificates without a certificate transparency
	// timestamp, as a private Fulcio without a CT log issues them (recorded).
	// +optional
	insecureIgnoreSct bool,
	// Tunnels to other services on the caller's machine (a private Fulcio, a
	// token endpoint), e.g. tcp://127.0.0.1:5555: the tool container then
	// reaches 127.0.0.1:5555 through them.
	// +optional
	hostServices []*dagger.Service,
) (*dagger.Directory, error) {
	req := request{Version: version, GitRef: gitRef, GitSHA: gitSha, PR: pr, SourceURL: sourceUrl, Epoch: sourceDateEpoch}

	// Everything that can be wrong with the input fails here, before any build.
	man, err := m.manifest(ctx)
	if err != nil {
		return nil, err
	}
	svcs, err := man.Select(services)
	if err != nil {
		return nil, err
	}
	plats, err := plan.ParsePlatforms(platforms)
	if err != nil {
		return nil, err
	}
	tagList, err := req.tags()
	if err != nil {
		return nil, err
	}
	labels, err := req.labels()
	if err != nil {
		return nil, err
	}
	created, _ := req.created()
	var repo name.Repository
	publishing := registry != "" && !buildOnly
	if registry != "" {
		if repo, err = plan.ParseRegistry(registry); err != nil {
			return nil, err
		}
	}
	scanPol := scanPolicy{ignoreUnfixed: ignoreUnfixed, db: trivyDb}
	if scanPol.severities, err = parseSeverities(severity); err != nil {
		return nil, err
	}
	if scanPol.ignoreFile, err = m.trivyIgnore(ctx); err != nil {
		return nil, err
	}
	signPol := signPolicy{key: cosignKey, keyPassword: cosignPassword, idToken: oidcToken,
		requestURL: oidcRequestUrl, requestToken: oidcRequestToken, fulcioURL: fulcioUrl, rekorURL: rekorUrl, noTlog: noTlog, noSCT: insecureIgnoreSct}
	if err := signPol.validate(); err != nil {
		return nil, err
	}

	// Each stage's wall time goes to the log (and hack/bench reads it).
	stage, stageStart := "build", time.Now()
	next := func(name string) {
		fmt.Printf("stage %s: %.1fs\n", stage, time.Since(stageStart).Seconds())
		stage, stageStart = name, time.Now()
	}

	// Build every service × platform at once; the engine schedules them.
	ctrs := make([][]*dagger.Container, len(svcs))
	eg, gctx := errgroup.WithContext(ctx)
	for i, s := range svcs {
		ctrs[i] = make([]*dagger.Container, len(plats))
		for j, p := range plats {
			eg.Go(func() error {
				c, err := m.build(gctx, s, dagger.Platform(p), req.Epoch, labels)
				if err != nil {
					return err
				}
				if c, err = c.Sync(gctx); err != nil {
					return fmt.Errorf("build %s for %s: %w", s.Name, p, err)
				}
				ctrs[i][j] = c
				return nil
			})
		}
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	layouts := make([]ociLayout, len(svcs))
	for i, s := range svcs {
		if layouts[i], err = m.exportLayout(ctx, ctrs[i]); err != nil {
			return nil, fmt.Errorf("export %s: %w", s.Name, err)
		}
	}

	// Scan and SBOM every image before anything leaves the engine.
	next("scan+sbom")
	tools := m.tools()
	reports := make([][]imageReports, len(svcs))
	eg, gctx = errgroup.WithContext(ctx)
	for i, s := range svcs {
		reports[i] = make([]imageReports, len(plats))
		for j, p := range plats {
			eg.Go(func() (err error) {
				reports[i][j], err = m.scanAndSBOM(gctx, tools, s.Name, p, layouts[i].Dir, scanPol)
				return err
			})
		}
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	var gate []string
	for i := range svcs {
		for _, r := range reports[i] {
			if r.gateErr != nil {
				gate = append(gate, r.gateErr.Error())
			}
		}
	}
	if len(gate) > 0 {
		return nil, fmt.Errorf("vulnerability gate (%s) failed, nothing was pushed:\n%s\n(fix or upgrade the packages, or list accepted CVEs in .trivyignore)",
			strings.Join(scanPol.severities, ","), strings.Join(gate, "\n"))
	}

	rel := release.Manifest{Version: version, Revision: gitSha, Created: created, Tags: tagList, Platforms: plats, Scan: scanPol.record()}
	result := dag.Directory()
	var items []publish.Item
	var targets []signTarget
	for i, s := range svcs {
		lay := layouts[i]
		rs := release.Service{Name: s.Name, IndexDigest: lay.IndexDigest, Platforms: lay.Platforms, Sizes: lay.Sizes,
			Reports: map[string]release.Reports{}}
		sboms := map[string]*dagger.File{}
		for _, r := range reports[i] {
			base := fileBase(s.Name, r.platform)
			rr := release.Reports{SARIF: "sarif/" + base + ".sarif", Scan: "scan/" + base + ".json", SBOM: "sbom/" + base + ".spdx.json", Findings: r.findings}
			result = result.WithFile(rr.SARIF, r.sarif).WithFile(rr.Scan, r.scanJSON).WithFile(rr.SBOM, r.sbom)
			rs.Reports[r.platform] = rr
			sboms[r.platform] = r.sbom
		}
		if publishing {
			// Publishing needs the blobs here, where the registry client runs.
			local := filepath.Join("publish", s.Name)
			if _, err := lay.Dir.Export(ctx, local); err != nil {
				return nil, fmt.Errorf("export %s: %w", s.Name, err)
			}
			idx, err := publish.LoadIndex(local)
			if err != nil {
				return nil, err
			}
			if d, _ := idx.Digest(); d.String() != lay.IndexDigest {
				return nil, fmt.Errorf("export %s: layout index %s, expected %s", s.Name, d, lay.IndexDigest)
			}
			svcRepo := repo.Registry.Repo(repo.RepositoryStr(), s.Name)
			rs.Image = svcRepo.Name()
			items = append(items, publish.Item{Repo: svcRepo, Index: idx})
			targets = append(targets, signTarget{service: s.Name, repo: svcRepo.Name(), index: lay.IndexDigest, platforms: lay.Platforms, sboms: sboms})
		} else {
			// Unpublished, the images themselves are the release.
			rs.Layout = filepath.Join("images", s.Name)
			result = result.WithDirectory(rs.Layout, lay.Dir)
		}
		rel.Services = append(rel.Services, rs)
	}

	if publishing {
		opts, err := m.registryOptions(ctx, repo, registryUsername, registryPassword, registryService)
		if err != nil {
			return nil, err
		}
		progress := func(f string, a ...any) { fmt.Printf(f+"\n", a...) }
		next("publish")
		pushed, err := publish.Push(ctx, items, progress, opts...)
		if err != nil {
			return nil, err
		}
		if signPol.mode() != "" {
			next("sign+attest")
			var r reach
			if registryService != nil {
				if err := r.add(ctx, "registry", registryService, repo.RegistryStr()); err != nil {
					return nil, err
				}
			}
			for i, svc := range hostServices {
				if err := r.add(ctx, fmt.Sprintf("host-%d", i), svc); err != nil {
					return nil, err
				}
			}
			auth := registryAuth{registry: repo.Name(), username: registryUsername, password: registryPassword}
			if err := m.signAll(ctx, tools, signPol, auth, r, targets); err != nil {
				return nil, err
			}
			rel.Signing = signPol.record()
			for i := range rel.Services {
				t := targets[i]
				rel.Services[i].Signed = append(rel.Services[i].Signed, t.index)
				for _, p := range sortedKeys(t.platforms) {
					rel.Services[i].Signed = append(rel.Services[i].Signed, t.platforms[p])
					rel.Services[i].Attested = append(rel.Services[i].Attested, t.platforms[p])
				}
				for _, d := range rel.Services[i].Signed {
					rel.Services[i].Signatures = append(rel.Services[i].Signatures, cosignRef(t.repo, d, ".sig"))
				}
				for _, d := range rel.Services[i].Attested {
					rel.Services[i].Signatures = append(rel.Services[i].Signatures, cosignRef(t.repo, d, ".att"))
				}
			}
		}
		next("tag")
		if err := publish.Tag(ctx, items, pushed, tagList, progress, opts...); err != nil {
			return nil, err
		}
		rel.Registry, rel.Published = repo.Name(), true
	}

	next("done")
	js, err := rel.JSON()
	if err != nil {
		return nil, err
	}
	fmt.Print(rel.Summary())
	return result.
		WithNewFile("release.json", string(js)).
		WithNewFile("summary.md", rel.Summary()), nil
}

// trivyIgnore is the source's .trivyignore, nil when it has none.
func (m *BotCore) trivyIgnore(ctx context.Context) (*dagger.File, error) {
	found, err := m.Source.Glob(ctx, ".trivyignore")
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, nil
	}
	return m.Source.File(".trivyignore"), nil
}

// registryOptions authenticates with the given credentials (anonymous
// without them) and, with a tunnel, dials the tunnel for the registry's
// host while keeping the registry's own name in every reference.
func (m *BotCore) registryOptions(ctx context.Context, repo name.Repository, user string, password *dagger.Secret, tunnel *dagger.Service) ([]remote.Option, error) {
	auth := authn.Anonymous
	if password != nil {
		pw, err := password.Plaintext(ctx)
		if err != nil {
			return nil, err
		}
		auth = authn.FromConfig(authn.AuthConfig{Username: user, Password: pw})
	}
	opts := []remote.Option{remote.WithAuth(auth)}
	if tunnel != nil {
		if _, err := tunnel.Start(ctx); err != nil {
			return nil, fmt.Errorf("registry tunnel: %w", err)
		}
		endpoint, err := tunnel.Endpoint(ctx)
		if err != nil {
			return nil, fmt.Errorf("registry tunnel: %w", err)
		}
		host := repo.RegistryStr()
		tr := remote.DefaultTransport.(*http.Transport).Clone()
		dial := tr.DialContext
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == host || addr == host+":443" || addr == host+":80" {
				addr = endpoint
			}
			return dial(ctx, network, addr)
		}
		opts = append(opts, remote.WithTransport(tr))
	}
	return opts, nil
}
