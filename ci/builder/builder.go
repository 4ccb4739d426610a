package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/labels"
	"github.com/bot-core/delivery/pipelines/services"
)

// Spec is everything a builder needs for one service and one platform.
type Spec struct {
	Service services.Service
	// Source is the service's own directory.
	Source *dagger.Directory
	// Platform is the image's platform; BuildPlatform is the engine's own,
	// where architecture-free or cross-compiling steps run natively.
	Platform      dagger.Platform
	BuildPlatform dagger.Platform
	Images        Images
	// Epoch (SOURCE_DATE_EPOCH) stamps every file the builder adds, so the
	// same source gives the same layers, whatever the checkout's mtimes.
	Epoch int
	// Secrets are the build secrets the service's Dockerfile mounts, each
	// named by its id.
	Secrets []*dagger.Secret
	// Indexes are the package indexes to install from instead of the
	// public ones.
	Indexes Indexes
	// Probe is botcore-probe for Platform, put into the image when the
	// service's health check is an HTTP path (nil for a health-command).
	Probe *dagger.File
	// BuildKey is the secret per-build keys are derived from where a
	// framework would draw random ones (Next.js's preview mode and server
	// actions keys), with BuildKeyID naming it without revealing it; nil
	// leaves them random.
	BuildKey   *dagger.Secret
	BuildKeyID string
}

// Indexes are the package indexes a build uses (see package pkgindex).
type Indexes struct {
	Pip   PipIndex
	Npm   NpmRegistry
	Cargo CargoRegistry
}

// Build returns the runtime container of one service for one platform.
func Build(ctx context.Context, c *dagger.Client, s Spec) (*dagger.Container, error) {
	if s.Service.Builder() == services.DockerfileBuilder {
		return withHealthcheck(fromDockerfile(s), s).
			WithLabel("org.opencontainers.image.title", s.Service.Name).
			WithExposedPort(s.Service.Port), nil
	}
	var ctr *dagger.Container
	var err error
	switch s.Service.Language {
	case "rust":
		ctr, err = rust(c, s)
	case "python":
		ctr, err = python(ctx, c, s)
	case "nextjs":
		ctr, err = nextjs(c, s)
	default:
		return nil, fmt.Errorf("service %s: no builder for language %q", s.Service.Name, s.Service.Language)
	}
	if err != nil {
		return nil, err
	}
	return withHealthcheck(ctr, s).
		WithLabel("org.opencontainers.image.title", s.Service.Name).
		WithUser(NonRoot).
		WithExposedPort(s.Service.Port).
		WithEnvVariable("PORT", strconv.Itoa(s.Service.Port)), nil
}

// WithLabels puts a release's labels (version, revision, created, ...) on
// a container Build returned. Build leaves them off because Dagger keys an
// exec by every call before it, labels included: what runs an image as it
// is built (the start-up gate) is then replayed for a new version of
// unchanged sources instead of run again, and labels change nothing in how
// an image runs.
func WithLabels(ctr *dagger.Container, labels map[string]string) *dagger.Container {
	for _, k := range sortedKeys(labels) {
		ctr = ctr.WithLabel(k, labels[k])
	}
	return ctr
}

// withHealthcheck declares the service's health check in the image (see
// labels.LabelHealthcheck), with the prober it runs when it is an HTTP path.
func withHealthcheck(ctr *dagger.Container, s Spec) *dagger.Container {
	if s.Service.HealthCommand == nil {
		ctr = ctr.WithFile(services.ProbePath, s.Probe.WithTimestamps(s.Epoch), dagger.ContainerWithFileOpts{Permissions: 0o755})
	}
	check, _ := json.Marshal(s.Service.Healthcheck()) // a []string always marshals
	return ctr.WithLabel(labels.LabelHealthcheck, string(check))
}

// Arch is the Debian/Go architecture name of a platform ("linux/arm64" -> "arm64").
func Arch(p dagger.Platform) string {
	_, a, _ := strings.Cut(string(p), "/")
	a, _, _ = strings.Cut(a, "/")
	return a
}

// sh runs a POSIX shell script with -eu, so a failing step fails the build.
func sh(script string) []string { return []string{"sh", "-euc", script} }

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
