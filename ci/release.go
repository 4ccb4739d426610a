package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"dagger/bot-core/internal/dagger"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/bot-core/delivery/pipelines/plan"
	"github.com/bot-core/delivery/pipelines/release"
	"github.com/bot-core/delivery/pipelines/services"
	"github.com/bot-core/delivery/pipelines/signpolicy"
)

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
	// SOURCE_DATE_EPOCH: file times, the config's created time and the
	// created label, in seconds since 1970 (0 is 1970-01-01). By default the
	// commit time of the checkout's HEAD (see --git), or, without a git
	// checkout, the newest file time in the source.
	// +default=-1
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
	// OCI repositories of Trivy's database, tried in order: a mirror, as
	// Trivy's --db-repository (default: Trivy's own). One on this machine is
	// reached through --host-services, e.g. tcp://127.0.0.1:5000.
	// +optional
	trivyDbRepository []string,
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
	// Fulcio (keyless certificates); default: the public Sigstore Fulcio.
	// +optional
	fulcioUrl string,
	// Rekor transparency log; default: the public Sigstore Rekor.
	// +optional
	rekorUrl string,
	// Sign without writing to the transparency log (recorded in release.json).
	// +optional
	noTlog bool,
	// Accept keyless certificates without a certificate transparency
	// timestamp, as a private Fulcio without a CT log issues them (recorded).
	// +optional
	insecureIgnoreSct bool,
	// Publish without signing when no --cosign-key or OIDC token is given
	// (recorded in release.json); without it such a release is refused.
	// +optional
	allowUnsigned bool,
	// Move a published version tag (v1.2.3, 1.2.3) that names another image;
	// without it such a release stops before any tag moves.
	// +optional
	forceRetag bool,
	// When the release fails after the build (vulnerability gate, push,
	// signing, tags), still return the release directory, with release.json
	// saying how far it got (state), why it stopped (error) and what became
	// of every tag, and end the call successfully: the caller must then run
	// check-release on release.json (the workflow does).
	// +optional
	recordFailure bool,
	// Tunnels to other services on the caller's machine (a private Fulcio, a
	// token endpoint), e.g. tcp://127.0.0.1:5555: the tool container then
	// reaches 127.0.0.1:5555 through them.
	// +optional
	hostServices []*dagger.Service,
	// Build secrets for services built from their Dockerfile: each secret's
	// name is the id the Dockerfile mounts (RUN --mount=type=secret,id=ID),
	// as services.yaml lists it under secrets:. Never written to a layer,
	// a log or release.json.
	// +optional
	buildSecrets []*dagger.Secret,
	// Do not start the images before publishing, for services that cannot
	// start without others (a database); recorded in release.json.
	// +optional
	skipStartCheck bool,
	// Seconds each image has to answer its health path in the start-up
	// check (arm64 images run under emulation on an amd64 engine).
	// +default=180
	startTimeout int,
	// pip's index for Python services instead of PyPI (pip --index-url), e.g.
	// a company mirror: https://nexus.example.com/repository/pypi/simple.
	// A plain http:// index is trusted as given. Recorded as given: no
	// credentials in the URL, see --pip-credentials.
	// +optional
	pipIndexUrl string,
	// More indexes pip also looks in (pip --extra-index-url).
	// +optional
	pipExtraIndexUrl []string,
	// Pages of links to wheels and sources (pip --find-links).
	// +optional
	pipFindLinks []string,
	// user:password for the hosts of the pip indexes above (for a token:
	// the user the index expects, e.g. __token__:TOKEN), e.g.
	// env://PIP_CREDENTIALS. Reaches pip as a netrc file on a scratch
	// mount: never in a URL, a log, a layer or release.json.
	// +optional
	pipCredentials *dagger.Secret,
	// The npm registry Next.js services install from instead of
	// registry.npmjs.org (npm's registry, over the project's .npmrc), e.g.
	// https://nexus.example.com/repository/npm/. Recorded as given: no
	// credentials in the URL, see --npm-token.
	// +optional
	npmRegistry string,
	// The token for --npm-registry (or for registry.npmjs.org without it),
	// e.g. env://NPM_TOKEN: reaches npm ci as a user .npmrc on a scratch
	// mount, never a log, a layer or release.json.
	// +optional
	npmToken *dagger.Secret,
	// A cargo registry mirroring crates.io that Rust services fetch crates
	// from, given as its sparse index, e.g.
	// sparse+https://nexus.example.com/repository/cargo/ (cargo's source
	// replacement; Cargo.lock's checksums still apply, and a project's own
	// .cargo/config.toml, e.g. vendored crates, takes precedence). Recorded
	// as given: no credentials in the URL, see --cargo-token.
	// +optional
	cargoRegistry string,
	// The token for --cargo-registry, e.g. env://CARGO_TOKEN: reaches cargo
	// as a secret variable of the build step, never a log, a layer or
	// release.json. The registry must ask for it (auth-required in its
	// config.json), as private registries do.
	// +optional
	cargoToken *dagger.Secret,
) (_ *dagger.Directory, rerr error) {
	defer func() { rerr = wholeError(rerr) }()
	sign := signer{key: cosignKey, keyPassword: cosignPassword, idToken: oidcToken, requestURL: oidcRequestUrl, requestToken: oidcRequestToken,
		fulcioURL: fulcioUrl, rekorURL: rekorUrl, noTlog: noTlog, noSCT: insecureIgnoreSct, hostServices: hostServices}
	// Everything that can be wrong with the input fails here, before any build.
	r, err := m.newRun(ctx, plan.Request{Services: services, Platforms: platforms, Version: version,
		GitRef: gitRef, GitSHA: gitSha, PR: pr, SourceURL: sourceUrl, Epoch: sourceDateEpoch,
		Registry: registry, BuildOnly: buildOnly, Severity: severity, IgnoreUnfixed: ignoreUnfixed, Signing: sign.inputs(),
		AllowUnsigned: allowUnsigned})
	if err != nil {
		return nil, err
	}
	r.recordFailure = recordFailure
	if startTimeout < 1 {
		return nil, fmt.Errorf("--start-timeout %d: give the seconds each image has to answer its health check", startTimeout)
	}
	secrets, err := matchBuildSecrets(ctx, r.plan.Services, buildSecrets)
	if err != nil {
		return nil, err
	}
	indexes, err := packageIndexes(indexFlags{pipIndexUrl, pipExtraIndexUrl, pipFindLinks, pipCredentials, npmRegistry, npmToken, cargoRegistry, cargoToken})
	if err != nil {
		return nil, err
	}
	r.pipIndexes, r.npmRegistry, r.cargoRegistry = indexes.Pip.URLs(), indexes.Npm.Registry, indexes.Cargo.Registry
	if r.tool, err = m.toolIdentity(ctx); err != nil {
		return nil, err
	}
	// The database fetch runs beside the builds; when it fails, the run ends
	// at once with its error, whatever stage it is in.
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	db, err := m.vulnDB(ctx, fail, trivyDb, trivyDbRepository, append(slices.Clone(hostServices), registryService))
	if err != nil {
		return nil, err
	}
	gate, err := m.scanStage(ctx, db)
	if err != nil {
		return nil, err
	}
	var out stage = exportStage{}
	if r.plan.Publishing() {
		out = registryStage{m: m, username: registryUsername, password: registryPassword, tunnel: registryService, sign: sign, forceRetag: forceRetag}
	}
	start := startStage{m: m, timeout: startTimeout, skip: skipStartCheck}
	dir, err := r.execute(ctx, buildStage{m: m, secrets: secrets, indexes: indexes}, start, gate, out)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return nil, cause
	}
	return dir, err
}

// A stage is one step of a release (build, scan, publish, ...): it reads and
// adds to the run's artifacts, and its error ends the release.
type stage interface {
	String() string
	Run(ctx context.Context, r *run) error
}

// run is one build-all: its plan, one artifact per service flowing through
// the stages, and the release directory and record they fill in.
type run struct {
	plan  plan.Plan
	arts  []*artifact
	out   *dagger.Directory
	rel   release.Manifest
	clock clock
	// recordFailure: a failure after the build returns the release
	// directory with the failure in release.json instead of an error.
	recordFailure bool
	// req is the request as given and started when the run began: the
	// provenance records both.
	req     plan.Request
	started time.Time
	// pipIndexes are the pip indexes the build installs from, for the
	// provenance (none: PyPI).
	pipIndexes  []string
	npmRegistry string
	// cargoRegistry is the crates.io mirror the Rust services fetched from.
	cargoRegistry string
	// tool waits for the botcore tool's identity (see toolIdentity).
	tool func() (*release.Tool, error)
}

// artifact is one service on its way through the stages.
type artifact struct {
	service services.Service
	// unlabelled are the runtime containers, one per platform in plan
	// order, without the release's labels (build): what the start-up gate
	// runs and the layout is made of, so that both are reused for a new
	// version of unchanged sources.
	unlabelled []*dagger.Container
	// layout holds every platform as one OCI image layout in the engine,
	// labelled (build).
	layout ociLayout
	// sboms are the SPDX documents per platform (scan), attested when signing.
	sboms map[string]*dagger.File
	// vulns are the scans per platform as cosign vulnerability predicates
	// (scan), attested when signing.
	vulns map[string]*dagger.File
	// record is what release.json says of the service; each stage adds to it.
	record release.Service
}

// newRun checks the request and reads what the stages need from the source.
func (m *BotCore) newRun(ctx context.Context, req plan.Request) (*run, error) {
	if err := m.pin(ctx); err != nil {
		return nil, err
	}
	man, err := m.manifest(ctx)
	if err != nil {
		return nil, err
	}
	fromSource := req.Epoch == epochFromSource
	if fromSource {
		req.Epoch = 0 // the rest of the request is checked before the source is read
	}
	p, err := plan.New(man, req)
	if err != nil {
		return nil, withFlag(err)
	}
	if err := m.checkSources(ctx, p.Services); err != nil {
		return nil, err
	}
	if fromSource {
		if req.Epoch, err = m.sourceDate(ctx); err != nil {
			return nil, err
		}
		if p, err = plan.New(man, req); err != nil {
			return nil, withFlag(err)
		}
	}
	r := &run{plan: p, req: req, started: time.Now().UTC(), out: dag.Directory(), rel: release.Manifest{Version: p.Version, Revision: p.Revision, SourceURL: req.SourceURL, Created: p.Created,
		Tags: p.Tags, Platforms: p.Platforms, Unsigned: p.Unsigned, ImagesLock: m.LockDigest}}
	for _, s := range p.Services {
		r.arts = append(r.arts, &artifact{service: s, unlabelled: make([]*dagger.Container, len(p.Platforms)), sboms: map[string]*dagger.File{},
			vulns: map[string]*dagger.File{}})
	}
	return r, nil
}

// execute runs the stages in order, then writes release.json and summary.md.
// A stage's error ends the release; once something was built, the record
// says so too (release.json's state and error) and, with recordFailure,
// comes out instead of the error.
func (r *run) execute(ctx context.Context, stages ...stage) (*dagger.Directory, error) {
	for _, s := range stages {
		r.clock.lap(s.String())
		err := s.Run(ctx, r)
		if err == nil {
			continue
		}
		if r.rel.State == "" || !r.recordFailure {
			return nil, err
		}
		if r.rel.Error == "" {
			r.rel.Error = err.Error()
		}
		fmt.Printf("RELEASE FAILED in stage %s (state %s), recorded in release.json: %v\n", s, r.rel.State, err)
		break
	}
	r.clock.lap("done")
	for _, a := range r.arts {
		r.rel.Services = append(r.rel.Services, a.record)
	}
	js, err := r.rel.JSON()
	if err != nil {
		return nil, err
	}
	fmt.Print(r.rel.Summary())
	return r.out.WithNewFile("release.json", string(js)).WithNewFile("summary.md", r.rel.Summary()), nil
}

// clock prints each stage's wall time as it ends ("stage build: 12.3s");
// hack/bench and the stage benchmark read these lines.
type clock struct {
	stage string
	start time.Time
}

func (c *clock) lap(next string) {
	if next == c.stage {
		return
	}
	if c.stage != "" {
		fmt.Printf("stage %s: %.1fs\n", c.stage, time.Since(c.start).Seconds())
	}
	c.stage, c.start = next, time.Now()
}

// wholeError keeps what this module says around a failed engine call. The
// generated entry point reports an error chain holding one GraphQL error by
// that error's message alone, which would drop the context the stages wrap
// around it ("attest the SBOM of api (linux/arm64): ..."); the whole message
// goes out instead, with the engine's details (an exec's exit code and
// output) kept.
func wholeError(err error) error {
	var gql *gqlerror.Error
	if err == nil || !errors.As(err, &gql) || err == error(gql) {
		return err
	}
	// gqlerror's own text starts "input: "; the message alone reads better.
	msg := strings.Replace(err.Error(), gql.Error(), gql.Message, 1)
	return &gqlerror.Error{Message: msg, Extensions: gql.Extensions}
}

// withFlag words a plan error with build-all's own flag names.
func withFlag(err error) error {
	var fe *plan.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	switch {
	case errors.Is(err, plan.ErrNothingToTag):
		return errors.New("nothing to tag: give --version (e.g. v1.0.0), or --git-ref/--git-sha/--pr as CI does")
	case errors.Is(err, signpolicy.ErrKeyAndToken):
		return errors.New("give either --cosign-key (key-based signing) or an OIDC token (keyless), not both")
	case errors.Is(err, signpolicy.ErrTokenAndRequest):
		return errors.New("give either --oidc-token or --oidc-request-url/--oidc-request-token, not both")
	case errors.Is(err, signpolicy.ErrRequestHalf):
		return errors.New("--oidc-request-url and --oidc-request-token go together (GitHub Actions passes both)")
	case errors.Is(err, signpolicy.ErrPasswordWithoutKey):
		return errors.New("--cosign-password was given without --cosign-key")
	case errors.Is(err, plan.ErrUnsigned):
		return errors.New("publishing without a signature: give --cosign-key, --oidc-token or --oidc-request-url/--oidc-request-token, or --allow-unsigned to publish unsigned images (recorded in release.json)")
	}
	flag := map[string]string{"services": "--services", "platforms": "--platforms", "version": "--version",
		"epoch": "--source-date-epoch", "registry": "--registry", "severity": "--severity"}[fe.Field]
	if flag == "" {
		return err
	}
	return fmt.Errorf("%s: %w", flag, err)
}

// CheckRelease fails when a release record (build-all's release.json) says
// the release did not complete, with one sentence saying how far it got and
// why; it prints the state when it did. The workflow runs it after
// build-all --record-failure, whose call succeeds either way.
func (m *BotCore) CheckRelease(ctx context.Context,
	// release.json of the release to check.
	record *dagger.File,
) (string, error) {
	data, err := record.Contents(ctx)
	if err != nil {
		return "", err
	}
	rel, err := release.Parse([]byte(data))
	if err != nil {
		return "", err
	}
	if err := rel.Check(); err != nil {
		return "", err
	}
	if rel.State == "" {
		return "", errors.New("release.json has no state: it was not written by this build-all (or by one older than the state field)")
	}
	return fmt.Sprintf("release %s: %s", rel.Title(), rel.State), nil
}
