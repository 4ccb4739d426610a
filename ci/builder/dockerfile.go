package builder

import (
	"context"
	"fmt"
	"strconv"

	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/dockerfile"
)

// fromDockerfile builds the service as its own Dockerfile says, with the
// service's directory as the context, for the target platform. The image
// keeps what the Dockerfile declares (user, entrypoint, command, environment,
// exposed ports): Build adds only the release labels.
func fromDockerfile(s Spec) *dagger.Container {
	// SOURCE_DATE_EPOCH as a build argument is what BuildKit and
	// reproducible-build-aware tools inside RUN steps read.
	args := []dagger.BuildArg{{Name: "SOURCE_DATE_EPOCH", Value: strconv.Itoa(s.Epoch)}}
	for _, k := range sortedKeys(s.Service.BuildArgs) {
		args = append(args, dagger.BuildArg{Name: k, Value: s.Service.BuildArgs[k]})
	}
	return s.Source.DockerBuild(dagger.DirectoryDockerBuildOpts{
		Dockerfile: s.Service.Dockerfile,
		Platform:   s.Platform,
		Target:     s.Service.Target,
		BuildArgs:  args,
		Secrets:    s.Secrets,
	})
}

// dockerfileBases reads the Dockerfile's FROM lines: the images its stages
// start from, each on the platform its FROM asks for or the target's.
func dockerfileBases(ctx context.Context, s Spec) ([]Base, error) {
	text, err := s.Source.File(s.Service.Dockerfile).Contents(ctx)
	if err != nil {
		return nil, fmt.Errorf("service %s: read %s: %w", s.Service.Name, s.Service.Dockerfile, err)
	}
	args := map[string]string{"BUILDPLATFORM": string(s.BuildPlatform), "TARGETPLATFORM": string(s.Platform)}
	for k, v := range s.Service.BuildArgs {
		args[k] = v
	}
	found, err := dockerfile.Bases(text, args)
	if err != nil {
		return nil, fmt.Errorf("service %s: %s: %w", s.Service.Name, s.Service.Dockerfile, err)
	}
	var out []Base
	for _, b := range found {
		p := s.Platform
		if b.Platform != "" {
			p = dagger.Platform(b.Platform)
		}
		out = append(out, Base{Ref: b.Image, Platform: p})
	}
	return out, nil
}
