// Package plan turns a release request into a checked plan before anything
// is built: which services on which platforms, the tags and labels the
// version gives, where the images go, the vulnerability gate and how they are
// signed. Every mistake in the request fails here, with nothing half-done.
package plan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bot-core/delivery/pipelines/labels"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/bot-core/delivery/pipelines/services"
	"github.com/bot-core/delivery/pipelines/signpolicy"
	"github.com/bot-core/delivery/pipelines/tags"
	"github.com/bot-core/delivery/pipelines/vuln"
)

// Request is a release as the caller asks for it.
type Request struct {
	// Services to build by name; none means every service in the manifest.
	Services []string
	// Platforms, comma-separated ("linux/amd64,linux/arm64").
	Platforms string
	// Version is the release version (semver); or GitRef/GitSHA/PR as CI passes them.
	Version   string
	GitRef    string
	GitSHA    string
	PR        int
	SourceURL string
	// Epoch is SOURCE_DATE_EPOCH: the created label and every file time.
	Epoch int
	// Registry is the prefix to publish under; empty exports only.
	Registry string
	// BuildOnly keeps a release with a registry from pushing (pull requests).
	BuildOnly bool
	// Severity is the gate's comma-separated severity list.
	Severity      string
	IgnoreUnfixed bool
	Signing       signpolicy.Inputs
	// AllowUnsigned lets a release publish without a signing key or token.
	AllowUnsigned bool
}

// Plan is a checked release.
type Plan struct {
	Services  []services.Service
	Platforms []string
	Version   string
	Revision  string
	Tags      []string
	Labels    map[string]string
	Created   time.Time
	Epoch     int
	// Registry is where the release would be published; nil when none was given.
	Registry  *registry.Info
	BuildOnly bool
	// Severities fail the vulnerability gate.
	Severities    []string
	IgnoreUnfixed bool
	Signing       signpolicy.Mode
	// Unsigned is true when the release publishes unsigned images, as the
	// caller explicitly allowed.
	Unsigned bool
}

// Mistakes a front end words with its own flag names.
var (
	ErrNothingToTag  = errors.New("nothing to tag: a release needs a version, or the git ref, commit or pull request number CI builds")
	ErrNegativeEpoch = errors.New("the source date epoch is negative: it counts seconds since 1970")
	// ErrUnsigned: publishing needs a signature unless unsigned images are
	// explicitly allowed; deploy and pull refuse unsigned images by default,
	// so an unsigned release would only surface at deploy time.
	ErrUnsigned = errors.New("publishing without a signature: give a signing key or an OIDC token, or allow unsigned images explicitly")
)

// Field says which part of the request an error is about, so a front end can
// name its own flag for it.
type FieldError struct {
	Field string // "services", "platforms", "version", "epoch", "registry", "severity", "signing"
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// New checks req against the manifest and returns the plan, or the first
// problem found, as a *FieldError.
func New(man services.Manifest, req Request) (Plan, error) {
	fail := func(field string, err error) (Plan, error) { return Plan{}, &FieldError{Field: field, Err: err} }
	// A push of the git tag v1.2.3 is the release v1.2.3, as if --version
	// had been given: the images carry its version label and the record its
	// version, which is what verification checks a version tag against.
	if tag, ok := strings.CutPrefix(req.GitRef, "refs/tags/"); ok && req.Version == "" && tags.ValidateVersion(tag) == nil {
		req.Version = tag
	}
	p := Plan{Version: req.Version, Revision: req.GitSHA, Epoch: req.Epoch, BuildOnly: req.BuildOnly, IgnoreUnfixed: req.IgnoreUnfixed}
	var err error
	if p.Services, err = man.Select(req.Services); err != nil {
		return fail("services", err)
	}
	if p.Platforms, err = services.ParsePlatforms(req.Platforms); err != nil {
		return fail("platforms", err)
	}
	if req.Version == "" && req.GitRef == "" && req.PR == 0 {
		return fail("version", ErrNothingToTag)
	}
	// Compute validates the version (semver) and the SHA itself.
	if p.Tags, err = tags.Compute(tags.Source{Version: req.Version, Ref: req.GitRef, SHA: req.GitSHA, PR: req.PR}); err != nil {
		return fail("version", err)
	}
	if p.Labels, p.Created, err = ImageLabels(req.Version, req.GitSHA, req.SourceURL, req.Epoch); err != nil {
		return Plan{}, err
	}
	if req.Registry != "" {
		info, err := registry.Detect(req.Registry)
		if err != nil {
			return fail("registry", err)
		}
		p.Registry = &info
	}
	if p.Severities, err = vuln.ParseSeverities(req.Severity); err != nil {
		return fail("severity", err)
	}
	if p.Signing, err = signpolicy.Choose(req.Signing); err != nil {
		return fail("signing", err)
	}
	if p.Publishing() && p.Signing == "" {
		if !req.AllowUnsigned {
			return fail("signing", ErrUnsigned)
		}
		p.Unsigned = true
	}
	return p, nil
}

// ImageLabels are the OCI labels of an image built from a version, commit and
// source at a SOURCE_DATE_EPOCH, and the created time they stamp. An empty
// version is allowed (a build outside a release); errors are *FieldError.
func ImageLabels(version, revision, source string, epoch int) (map[string]string, time.Time, error) {
	if version != "" {
		if err := tags.ValidateVersion(version); err != nil {
			return nil, time.Time{}, &FieldError{Field: "version", Err: err}
		}
	}
	if epoch < 0 {
		return nil, time.Time{}, &FieldError{Field: "epoch", Err: ErrNegativeEpoch}
	}
	created, err := labels.CreatedFromEpoch(strconv.Itoa(epoch))
	if err != nil {
		return nil, time.Time{}, &FieldError{Field: "epoch", Err: err}
	}
	return labels.Labels(labels.Meta{Version: version, Revision: revision, Source: source, Created: created}), created, nil
}

// Publishing says whether the release is pushed to a registry.
func (p Plan) Publishing() bool { return p.Registry != nil && !p.BuildOnly }

// Repo is the repository a service is published to.
func (p Plan) Repo(service string) (name.Repository, error) {
	if p.Registry == nil {
		return name.Repository{}, fmt.Errorf("service %s: no registry to publish to", service)
	}
	return p.Registry.Repo(service)
}
