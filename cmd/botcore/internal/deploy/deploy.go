// Package deploy rolls one release of the bot-core stack out to a Docker
// engine with docker compose:
//
//  1. resolve: load the compose file (compose-go) with VERSION=<version> and
//     resolve each selected service's image to a digest in its registry;
//  2. verify: check every digest's signature; if any fails, refuse the whole
//     deploy before anything is pulled or changed;
//  3. pull: have the engine pull each image by digest (and tag it with the
//     reference the compose file names);
//  4. up: `docker compose ... up --detach --pull never`, with an override
//     file pinning each service's image to the verified digest, so compose
//     runs exactly what was verified even if a tag moves meanwhile;
//  5. wait until every service's container is healthy (Docker health
//     status; running, for a service without a healthcheck);
//  6. when up or the wait fails: deploy the previous version the same way
//     (verified, pulled, up, healthy) and report the failure and the rollback.
//
// The previous version is what the running containers of the project say in
// their com.bot-core.version label (or the image's OCI version label), read
// before anything changes, unless the caller names it.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/bot-core/delivery/cmd/botcore/internal/digests"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
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
	// Services restricts the deploy to these services; empty means all the
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

	// Log prints one progress line.
	Log func(format string, args ...any)
	// ComposeOutput receives docker compose's own output.
	ComposeOutput io.Writer
}

// Deployer runs deploys with one Config.
type Deployer struct {
	Config
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
	return &Deployer{cfg}, nil
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
	Release     Release `json:"release"`
	// Verification describes the signature check, or says it is skipped.
	Verification string `json:"verification"`
	// Previous is the rollback version; "" when none is running.
	Previous string `json:"previous,omitempty"`
	// PreviousSource says where Previous comes from.
	PreviousSource string `json:"previous_source"`
	// Compose is the docker compose command line (the pin file named
	// <pins>).
	Compose       []string      `json:"compose"`
	HealthTimeout time.Duration `json:"health_timeout"`
}

// NewPlan resolves version and the previous version. previous overrides
// the detection when not "". Nothing is changed.
func (d *Deployer) NewPlan(ctx context.Context, version, previous string) (*Plan, error) {
	p := &Plan{
		Project:       d.ProjectName,
		ComposeFile:   d.ComposeFile,
		EnvFile:       d.EnvFile,
		DockerHost:    d.DockerHost,
		HealthTimeout: d.HealthTimeout,
		Verification:  "NONE: signatures are NOT verified",
	}
	if d.Verifier != nil {
		p.Verification = d.Verifier.Describe()
	}
	rel, err := d.Resolve(ctx, version)
	if err != nil {
		return nil, err
	}
	p.Release = *rel
	switch {
	case previous != "":
		p.Previous, p.PreviousSource = previous, "given"
	case d.Docker == nil:
		p.PreviousSource = "unknown: no Docker engine"
	default:
		prev, err := d.RunningVersion(ctx, serviceNames(rel))
		if err != nil {
			return nil, err
		}
		p.Previous = prev
		if prev == "" {
			p.PreviousSource = "no container of project " + d.ProjectName + " is running"
		} else {
			p.PreviousSource = "read from the running containers' " + LabelVersion + " label"
		}
	}
	p.Compose = append([]string{d.DockerCLI}, d.composeArgs("<pins>", serviceNames(rel))...)
	return p, nil
}

// Deploy rolls version out as the package comment describes. A failure
// before `compose up` changes nothing; a failure after it triggers the
// rollback to plan.Previous, and the returned error says what failed and
// what the rollback did.
func (d *Deployer) Deploy(ctx context.Context, plan *Plan) error {
	rel := &plan.Release
	if err := d.verify(ctx, rel); err != nil {
		return err
	}
	if err := d.pull(ctx, rel); err != nil {
		return fmt.Errorf("%w; nothing was changed (the running services were not touched)", err)
	}
	err := d.upAndWait(ctx, rel)
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
		return fmt.Errorf("%w; no previous version was running, so there is nothing to roll back to: the stack was left as it is "+
			"(see `docker compose -p %s logs`, remove it with `docker compose -p %s down`)", failure, d.ProjectName, d.ProjectName)
	case plan.Previous == rel.Version:
		return fmt.Errorf("%w; %s was already the running version, so there is nothing older to roll back to: the stack was left as it is",
			failure, rel.Version)
	}
	d.Log("%v", failure)
	d.Log("rolling back to %s", plan.Previous)
	if rerr := d.rollback(ctx, plan.Previous); rerr != nil {
		return fmt.Errorf("%w; the rollback to %s failed too: %v", failure, plan.Previous, rerr)
	}
	return fmt.Errorf("%w; rolled back to %s, which is running and healthy", failure, plan.Previous)
}

func (d *Deployer) rollback(ctx context.Context, version string) error {
	rel, err := d.Resolve(ctx, version)
	if err != nil {
		return err
	}
	if err := d.verify(ctx, rel); err != nil {
		return err
	}
	if err := d.pull(ctx, rel); err != nil {
		return err
	}
	if err := d.upAndWait(ctx, rel); err != nil {
		return err
	}
	d.Log("rolled back to %s: healthy (%s)", version, strings.Join(serviceNames(rel), ", "))
	return nil
}

func (d *Deployer) upAndWait(ctx context.Context, rel *Release) error {
	if err := d.up(ctx, rel); err != nil {
		return err
	}
	return d.waitHealthy(ctx, rel)
}

// verify checks every image before anything is pulled, and reports every
// failure at once.
func (d *Deployer) verify(ctx context.Context, rel *Release) error {
	if d.Verifier == nil {
		d.Log("WARNING: NOT verifying the signatures of %s: running whatever the registry serves", rel.Version)
		return nil
	}
	var failed []string
	for _, img := range rel.Images {
		ref, err := name.NewDigest(img.Pinned, name.WeakValidation)
		if err != nil {
			return err
		}
		d.Log("verifying %s (%s)", img.Reference, digests.Short(img.Digest))
		if err := d.Verifier.Verify(ctx, ref); err != nil {
			failed = append(failed, fmt.Sprintf("%s (%s, %s): %v", img.Service, img.Reference, digests.Short(img.Digest), err))
			continue
		}
		d.Log("verified %s", img.Service)
	}
	if len(failed) > 0 {
		return fmt.Errorf("refusing to deploy %s: the signature of %d of %d images does not verify; nothing was pulled or changed:\n  %s",
			rel.Version, len(failed), len(rel.Images), strings.Join(failed, "\n  "))
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

// selected reports whether service is deployed by this Deployer.
func (d *Deployer) selected(service string) bool {
	return len(d.Services) == 0 || slices.Contains(d.Services, service)
}
