package builder

import (
	"context"
	"fmt"

	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/services"
)

// Base is one image a builder starts From, on the platform it runs on.
type Base struct {
	Ref      string
	Platform dagger.Platform
}

// Bases lists the images Build starts from for s, as its language's builder
// uses them (a cross-compiling or platform-free step on the build platform),
// so that provenance names exactly what went into the image. A Dockerfile
// service's are its FROM lines'.
func Bases(ctx context.Context, s Spec) ([]Base, error) {
	if s.Service.Builder() == services.DockerfileBuilder {
		return dockerfileBases(ctx, s)
	}
	switch s.Service.Language {
	case "rust":
		return []Base{{s.Images.RustBuilder, s.BuildPlatform}, {s.Images.RustRuntime, s.Platform}}, nil
	case "python":
		return []Base{{s.Images.PythonBuilder, s.Platform}, {s.Images.PythonRuntime, s.Platform}}, nil
	case "nextjs":
		return []Base{{s.Images.NodeBuilder, s.BuildPlatform}, {s.Images.NodeRuntime, s.Platform}}, nil
	}
	return nil, fmt.Errorf("service %s: no builder for language %q", s.Service.Name, s.Service.Language)
}

// Resolve is the digest-qualified reference the engine pulled for b:
// imageRef right after From, resolved once per session like the build's own
// From, so it names the very manifest the build used.
func (b Base) Resolve(ctx context.Context, c *dagger.Client) (string, error) {
	ref, err := c.Container(dagger.ContainerOpts{Platform: b.Platform}).From(b.Ref).ImageRef(ctx)
	if err != nil {
		return "", fmt.Errorf("resolve the base image %s (%s): %w", b.Ref, b.Platform, err)
	}
	return ref, nil
}
