// Package deploy rolls one release of the bot-core stack out to a Docker
// engine with docker compose:
//
//  1. resolve: load the compose file (compose-go) with VERSION=<version> and
//     resolve each selected service's image, and the image of every service
//     it depends on (compose starts those too), to a digest in its registry;
//  2. verify: check every release image's signature; if any fails, refuse
//     the whole deploy before anything is pulled or changed;
//  3. record: what the project's containers run now (their image digests,
//     read from the engine) goes into the state file next to the compose
//     file, before anything changes;
//  4. pull: have the engine pull each image by digest (and tag it with the
//     reference the compose file names);
//  5. up: `docker compose ... up --detach --pull never`, with an override
//     file pinning each service's image to the verified digest, so compose
//     runs exactly what was verified even if a tag moves meanwhile, and
//     giving a service whose compose file names no health test the check
//     its image declares (label com.bot-core.healthcheck);
//  6. wait until every service's container is healthy (Docker health
//     status; running, for a service without a healthcheck);
//  7. when up or the wait fails: bring back the digests recorded in step 3
//     (verified, up, healthy), not whatever the previous version's tag
//     points to by then, and report the failure and the rollback.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/bot-core/delivery/pipelines/digests"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"
)

// Labels read from the running containers.
const (
	// LabelVersion is the label docker-compose.prod.yml puts on each
	// service's containers: the release they run.
	LabelVersion = "com.bot-core.version"
	// LabelImageVersion is the OCI label of the images, a fallback.
	LabelImageVersion = "org.opencontainers.image.version"

	labelProject = "com.docker.compose.project"
	labelService = "com.docker.compose.service"
)

// Verifier checks one image's signature.
type Verifier interface {
	// Describe says what Verify checks, for the plan, e.g. "cosign
	// signature by the key cosign.pub".
	Describe() string
	// Verify returns nil when the image at ref (a digest) carries a valid
	// signature by the expected signer.
	Verify(ctx context.Context, ref name.Digest) error
}

// Config is what a Deployer needs from its caller.
type Config struct {
	// ComposeFile is the compose file (e.g. docker-compose.prod.yml).
	ComposeFile string
	// ProjectName is the compose project (docker compose -p).
	ProjectName string
	// EnvFile is passed to compose (--env-file) and read for interpolation;
	// "" for none.
	EnvFile string
	// Services restricts the deploy to these services (and the services
	// they depend on, which compose starts with them); empty means all the
	// services of the compose file.
	Services []string
	// HealthTimeout bounds the wait for health (per version deployed).
	HealthTimeout time.Duration
	// PollInterval is how often the health wait looks; default 1s.
	PollInterval time.Duration

	// Environ is the environment of the docker compose process (also used
	// for interpolating the compose file), as KEY=VALUE; VERSION is
	// replaced by the version being deployed.
	Environ []string
	// DockerCLI is the docker binary that runs `docker compose`.
	DockerCLI string
	// DockerHost names the engine in messages.
	DockerHost string
	// Docker is the engine's API client.
	Docker *client.Client
	// Keychain gives registry credentials, to resolve digests and for the
	// engine's pulls.
	Keychain authn.Keychain
	// Verifier checks signatures; nil only when the caller deliberately
	// skips verification (--insecure-skip-verify).
	Verifier Verifier
	// ReleaseRepo is the repository prefix the release's images are
	// published under (DOCKER_REGISTRY, e.g. ghcr.io/acme/bot-core). Only
	// images under it can carry the release's signature; an image from
	// elsewhere (a redis from Docker Hub) is pinned to its digest but not
	// verified, and the plan says so. "" makes every image a release image.
	ReleaseRepo string
	// StateFile is where the deploy state of the project is kept; default
	// StateFile(ComposeFile, ProjectName).
	StateFile string

	// Log prints one progress line.
	Log func(format string, args ...any)
	// ComposeOutput receives docker compose's own output.
	ComposeOutput io.Writer
}

// Deployer runs deploys with one Config.
type Deployer struct {
	Config
	releaseRepo string // ReleaseRepo, normalized ("index.docker.io/..." for Docker Hub)
}

// New checks cfg and returns a Deployer.
func New(cfg Config) (*Deployer, error) {
	if cfg.ComposeFile == "" || cfg.ProjectName == "" {
		return nil, errors.New("deploy: compose file and project name are required")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = 3 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if cfg.ComposeOutput == nil {
		cfg.ComposeOutput = io.Discard
	}
	if cfg.Keychain == nil {
		cfg.Keychain = authn.DefaultKeychain
	}
	if cfg.StateFile == "" {
		cfg.StateFile = StateFile(cfg.ComposeFile, cfg.ProjectName)
	}
	d := &Deployer{Config: cfg}
	if err := d.SetReleaseRepo(cfg.ReleaseRepo); err != nil {
		return nil, err
	}
	return d, nil
}

// SetReleaseRepo sets Config.ReleaseRepo, for a caller that learns it from
// the compose interpolation (Lookup) after New.
func (d *Deployer) SetReleaseRepo(prefix string) error {
	d.ReleaseRepo, d.releaseRepo = prefix, ""
	if prefix == "" {
		return nil
	}
	repo, err := name.NewRepository(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return fmt.Errorf("the release registry %q is not a repository prefix: %w", prefix, err)
	}
	d.releaseRepo = repo.Name()
	return nil
}

// releaseImage reports whether ref is one of the release's images (under
// ReleaseRepo), which must carry the release's signature.
func (d *Deployer) releaseImage(ref name.Reference) bool {
	return d.releaseRepo == "" || strings.HasPrefix(ref.Context().Name()+"/", d.releaseRepo+"/")
}

// Image is one service's image in a release.
type Image struct {
	Service string `json:"service"`
	// Reference is the image as the compose file names it, e.g.
	// ghcr.io/acme/bot-core/rust-core-engine:v1.2.3.
	Reference string `json:"reference"`
	// Digest is what Reference resolved to (for a multi-platform image,
	// the index digest, which is what the release pipeline signs).
	Digest string `json:"digest"`
	// Pinned is the reference by digest compose is given.
	Pinned string `json:"pinned"`
	// Version is the release the image belongs to (for a running
	// container, its com.bot-core.version label).
	Version string `json:"version,omitempty"`
	// DependencyOf names the selected services (-s) that depend on this
	// one: compose starts it with them, so it is deployed with them.
	DependencyOf []string `json:"dependency_of,omitempty"`
	// ThirdParty marks an image outside the release registry: pinned to its
	// digest, not verified.
	ThirdParty bool `json:"third_party,omitempty"`
	// Verified is true once botcore verified the image's signature.
	Verified bool `json:"verified"`
}

// Release is one version of the stack, resolved.
type Release struct {
	Version string  `json:"version"`
	Images  []Image `json:"images"`
}

// Plan is what a deploy would do.
type Plan struct {
	Project     string  `json:"project"`
	ComposeFile string  `json:"compose_file"`
	EnvFile     string  `json:"env_file,omitempty"`
	DockerHost  string  `json:"docker_host"`
	StateFile   string  `json:"state_file"`
	Release     Release `json:"release"`
	// Verification describes the signature check, or says it is skipped.
	Verification string `json:"verification"`
	// SkipVerify is true when no signature is checked at all.
	SkipVerify bool `json:"skip_verify,omitempty"`
	// Running is what every container of the project runs now, read from
	// the engine; nil without an engine.
	Running *Release `json:"running,omitempty"`
	// Previous is the rollback version; "" when none is running.
	Previous string `json:"previous,omitempty"`
	// PreviousSource says where Previous comes from.
	PreviousSource string `json:"previous_source"`
	// Rollback are the digests a failed deploy returns to: what the
	// deployed services run now. nil with --previous (the tag is resolved
	// at rollback time) or when nothing runs.
	Rollback *Release `json:"rollback,omitempty"`
	// Compose is the docker compose command line (the pin file named
	// <pins>).
	Compose       []string      `json:"compose"`
	HealthTimeout time.Duration `json:"health_timeout"`
}

// NoPrevious is what a plan says when there is nothing to roll back to.
const NoPrevious = "no previous deployment recorded: nothing to roll back to"

// NewPlan resolves version and what a failure would roll back to: the
// digests the project's containers run now, or, when previous is not "",
// that version's tag (resolved again at rollback time). Nothing is changed.
func (d *Deployer) NewPlan(ctx context.Context, version, previous string) (*Plan, error) {
	p := &Plan{
		Project:       d.ProjectName,
		ComposeFile:   d.ComposeFile,
		EnvFile:       d.EnvFile,
		DockerHost:    d.DockerHost,
		StateFile:     d.StateFile,
		HealthTimeout: d.HealthTimeout,
		Verification:  "NONE: signatures are NOT verified",
		SkipVerify:    d.Verifier == nil,
	}
	if d.Verifier != nil {
		p.Verification = d.Verifier.Describe()
	}
	rel, err := d.Resolve(ctx, version)
	if err != nil {
		return nil, err
	}
	p.Release = *rel
	if d.Docker != nil {
		if p.Running, err = d.Observe(ctx); err != nil {
			return nil, err
		}
	}
	switch {
	case previous != "":
		p.Previous, p.PreviousSource = previous, "given"
	case d.Docker == nil:
		p.PreviousSource = "unknown: no Docker engine"
	default:
		target, err := d.rollbackTarget(p.Running, serviceNames(rel))
		if err != nil {
			return nil, err
		}
		switch {
		case target == nil && p.Running == nil:
			p.PreviousSource = NoPrevious + " (no container of project " + d.ProjectName + " is running)"
		case target == nil:
			p.PreviousSource = NoPrevious + " (project " + d.ProjectName + " runs none of " + strings.Join(serviceNames(rel), ", ") + " with a version label)"
		}
		if target == nil {
			break
		}
		p.Previous, p.Rollback = target.Version, target
		p.PreviousSource = "read from the running containers' " + LabelVersion + " label"
	}
	p.Compose = append([]string{d.DockerCLI}, d.composeArgs("<pins>", serviceNames(rel), false)...)
	return p, nil
}

// rollbackTarget is the part of running that services cover: what a
// failed deploy of services returns to. nil when none of them runs.
func (d *Deployer) rollbackTarget(running *Release, services []string) (*Release, error) {
	if running == nil {
		return nil, nil
	}
	byVersion := map[string][]string{}
	var unlabeled []string
	target := &Release{}
	for _, img := range running.Images {
		if !slices.Contains(services, img.Service) {
			continue
		}
		if img.Version == "" {
			unlabeled = append(unlabeled, img.Service)
			continue
		}
		byVersion[img.Version] = append(byVersion[img.Version], img.Service)
		target.Version = img.Version
		target.Images = append(target.Images, img)
	}
	if len(unlabeled) > 0 {
		d.Log("running %s without a %s label: not rolled back on failure", strings.Join(unlabeled, ", "), LabelVersion)
	}
	switch len(byVersion) {
	case 0:
		return nil, nil
	case 1:
		return target, nil
	}
	return nil, &MixedVersionsError{Project: d.ProjectName, Running: byVersion}
}

// Deploy rolls version out as the package comment describes. A failure
// before `compose up` changes nothing; a failure after it triggers the
// rollback to plan.Rollback (or plan.Previous's tag), and the returned error
// says what failed and what the rollback did.
func (d *Deployer) Deploy(ctx context.Context, plan *Plan) error {
	rel := &plan.Release
	if err := d.verify(ctx, rel); err != nil {
		return err
	}
	if err := d.checkReleases(ctx, rel); err != nil {
		return err
	}
	if err := d.pull(ctx, rel, false); err != nil {
		return fmt.Errorf("%w; nothing was changed (the running services were not touched)", err)
	}
	old, err := LoadState(d.StateFile)
	if err != nil {
		return fmt.Errorf("%w; nothing was changed (the running services were not touched)", err)
	}
	if old == nil {
		old = &State{Project: d.ProjectName}
	}
	// What runs now is recorded as the rollback target before anything
	// changes, and the release about to run as running, so cleanup keeps
	// both even if this process dies halfway.
	st := &State{Project: d.ProjectName, Running: merge(plan.Running, rel), Previous: plan.Running, Updated: time.Now().UTC()}
	if plan.Running == nil || sameDigests(plan.Rollback, rel) {
		// Nothing ran, or the same digests: the older rollback target
		// stays the one to keep.
		st.Previous = old.Previous
	}
	if err := st.Save(d.StateFile); err != nil {
		return fmt.Errorf("%w; nothing was changed (the running services were not touched)", err)
	}

	err = d.upAndWait(ctx, rel)
	if err == nil {
		d.Log("%s is deployed and healthy (%s)", rel.Version, strings.Join(serviceNames(rel), ", "))
		return nil
	}
	failure := fmt.Errorf("deploy of %s failed: %w", rel.Version, err)
	if ctx.Err() != nil {
		return fmt.Errorf("%w; interrupted, so no rollback was attempted: the stack was left as it is", failure)
	}
	switch {
	case plan.Previous == "":
		return fmt.Errorf("%w; %s, the stack was left as it is "+
			"(see `docker compose -p %s logs`, remove it with `docker compose -p %s down`)", failure, NoPrevious, d.ProjectName, d.ProjectName)
	case plan.Rollback != nil && sameDigests(plan.Rollback, rel), plan.Rollback == nil && plan.Previous == rel.Version:
		return fmt.Errorf("%w; %s was already running these digests, so there is nothing older to roll back to: the stack was left as it is",
			failure, rel.Version)
	}
	d.Log("%v", failure)
	target := plan.Rollback
	if target == nil {
		d.Log("rolling back to %s (given with --previous: its tag is resolved now)", plan.Previous)
		if target, err = d.Resolve(ctx, plan.Previous); err != nil {
			return fmt.Errorf("%w; the rollback to %s failed too: %v", failure, plan.Previous, err)
		}
	} else {
		d.Log("rolling back to %s, the digests that ran before (%s)", plan.Previous, describeDigests(target))
	}
	target = clone(target)
	if rerr := d.rollback(ctx, target); rerr != nil {
		return fmt.Errorf("%w; the rollback to %s failed too: %v", failure, plan.Previous, rerr)
	}
	st.Running, st.Previous = merge(plan.Running, target), old.Previous
	st.Updated = time.Now().UTC()
	if serr := st.Save(d.StateFile); serr != nil {
		d.Log("WARNING: the rollback succeeded but the deploy state was not updated: %v", serr)
	}
	return fmt.Errorf("%w; rolled back to %s, which is running and healthy", failure, plan.Previous)
}

// rollback brings rel back: verified (a digest that ran unverified, e.g.
// started by plain docker compose, is checked now), present in the engine,
// up with exactly its services, healthy.
func (d *Deployer) rollback(ctx context.Context, rel *Release) error {
	if err := d.verify(ctx, rel); err != nil {
		return err
	}
	if err := d.pull(ctx, rel, true); err != nil {
		return err
	}
	if err := d.up(ctx, rel, true); err != nil {
		return err
	}
	if err := d.waitHealthy(ctx, rel); err != nil {
		return err
	}
	d.Log("rolled back to %s: healthy (%s)", rel.Version, strings.Join(serviceNames(rel), ", "))
	return nil
}

func (d *Deployer) upAndWait(ctx context.Context, rel *Release) error {
	if err := d.up(ctx, rel, false); err != nil {
		return err
	}
	return d.waitHealthy(ctx, rel)
}

// verify checks every release image before anything is pulled, and reports
// every failure at once. Third-party images cannot carry the release's
// signature: they are only pinned.
func (d *Deployer) verify(ctx context.Context, rel *Release) error {
	if d.Verifier == nil {
		d.Log("WARNING: NOT verifying the signatures of %s: running whatever the registry serves", rel.Version)
		return nil
	}
	var failed []string
	checked := 0
	for i := range rel.Images {
		img := &rel.Images[i]
		if img.ThirdParty {
			d.Log("not verifying %s: a third-party image outside the release registry %s, pinned to %s", img.Reference, d.ReleaseRepo, digests.Short(img.Digest))
			continue
		}
		checked++
		ref, err := name.NewDigest(img.Pinned, name.WeakValidation)
		if err != nil {
			return err
		}
		d.Log("verifying %s (%s)", img.Reference, digests.Short(img.Digest))
		if err := d.Verifier.Verify(ctx, ref); err != nil {
			failed = append(failed, fmt.Sprintf("%s (%s, %s): %v", img.Service, img.Reference, digests.Short(img.Digest), err))
			continue
		}
		img.Verified = true
		d.Log("verified %s", img.Service)
	}
	if len(failed) > 0 {
		return fmt.Errorf("refusing to deploy %s: the signature of %d of %d images does not verify; nothing was pulled or changed:\n  %s",
			rel.Version, len(failed), checked, strings.Join(failed, "\n  "))
	}
	return nil
}

// merge is running with rel's services replaced by rel's images: what the
// project runs once rel is up.
func merge(running, rel *Release) *Release {
	out := &Release{Version: rel.Version}
	if running != nil {
		for _, img := range running.Images {
			if !slices.Contains(serviceNames(rel), img.Service) {
				out.Images = append(out.Images, img)
			}
		}
	}
	for _, img := range rel.Images {
		if img.Version == "" {
			img.Version = rel.Version
		}
		out.Images = append(out.Images, img)
	}
	slices.SortFunc(out.Images, func(a, b Image) int { return strings.Compare(a.Service, b.Service) })
	return out
}

// sameDigests reports whether a runs exactly rel's digests for rel's
// services.
func sameDigests(a, rel *Release) bool {
	if a == nil || len(a.Images) != len(rel.Images) {
		return false
	}
	for _, img := range rel.Images {
		if !slices.ContainsFunc(a.Images, func(x Image) bool { return x.Service == img.Service && x.Digest == img.Digest }) {
			return false
		}
	}
	return true
}

func clone(r *Release) *Release {
	c := *r
	c.Images = slices.Clone(r.Images)
	return &c
}

func describeDigests(r *Release) string {
	parts := make([]string, len(r.Images))
	for i, img := range r.Images {
		parts[i] = img.Service + " " + digests.Short(img.Digest)
	}
	return strings.Join(parts, ", ")
}

// checkReleases requires every verified image to be labelled rel.Version: a
// signature proves who built an image, not which release it is, and an
// older signed release tagged with the new version must not run as it. A
// rollback skips this: it returns to digests that ran, whatever they say.
func (d *Deployer) checkReleases(ctx context.Context, rel *Release) error {
	if d.Verifier == nil {
		return nil
	}
	opts := []remote.Option{remote.WithAuthFromKeychain(d.Keychain), remote.WithUserAgent("botcore")}
	var failed []string
	for _, img := range rel.Images {
		if img.ThirdParty {
			continue
		}
		ref, err := name.NewDigest(img.Pinned, name.WeakValidation)
		if err != nil {
			return err
		}
		if err := registry.CheckReleaseVersion(ctx, ref, rel.Version, opts...); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", img.Service, err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("refusing to deploy %s: %d images are not that release; nothing was pulled or changed:\n  %s",
			rel.Version, len(failed), strings.Join(failed, "\n  "))
	}
	return nil
}

func serviceNames(rel *Release) []string {
	names := make([]string, len(rel.Images))
	for i, img := range rel.Images {
		names[i] = img.Service
	}
	return names
}
