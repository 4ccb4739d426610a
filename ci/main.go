// Builds, scans, signs and publishes the bot-core service images.
//
// The same functions run on a laptop (`dagger call build-all --version v1.0.0`),
// in GitHub Actions and offline against mirrored base images. A release goes
// through the stages in release.go's BuildAll: plan, build (build.go), scan
// and SBOM (scan.go), then export or publish (publish.go) with signing
// (sign.go) before any tag moves.
package main

import (
	"context"
	"fmt"
	"strings"

	"dagger/bot-core/builder"
	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/plan"
	"github.com/bot-core/delivery/pipelines/services"
)

type BotCore struct {
	// Source tree holding services.yaml and the services.
	Source *dagger.Directory
	// Base images of the builders and runtimes (see New). Plain fields: the
	// object's state crosses calls as JSON of its exported fields.
	RustBuilder, RustRuntime     string
	PythonBuilder, PythonRuntime string
	NodeBuilder, NodeRuntime     string
	ToolsImage                   string
	// ImagesLock is the lockfile pinning the images above (images.lock);
	// nil reads the source's, if it has one.
	ImagesLock *dagger.File
	// LockDigest is the sha256 of the lockfile the images were pinned by,
	// set once they are (pin); empty for tags.
	LockDigest string
	// Go module the botcore tool CLI is built from (this repository's), the
	// Go image it is built in and the module proxy that build uses.
	ToolSource       *dagger.Directory
	GoImage, GoProxy string
	// Tool is a botcore binary the caller built; nil compiles ToolSource.
	Tool *dagger.File
	// Git holds the checkout's .git, for the commit time; empty when the
	// source is no git checkout.
	Git *dagger.Directory
	// BuildKey is the secret Next.js's per-build keys are derived from.
	BuildKey *dagger.Secret

	pinned     bool   // the image fields are final (pin)
	buildKeyID string // names BuildKey (pin)
}

func (m *BotCore) images() builder.Images {
	return builder.Images{
		RustBuilder: m.RustBuilder, RustRuntime: m.RustRuntime,
		PythonBuilder: m.PythonBuilder, PythonRuntime: m.PythonRuntime,
		NodeBuilder: m.NodeBuilder, NodeRuntime: m.NodeRuntime,
	}
}

func New(
	// Source tree holding services.yaml and the services; defaults to this repository.
	// +defaultPath="/"
	// +ignore=[".git", "**/node_modules", "**/target", "**/.next", "**/__pycache__", "dist"]
	source *dagger.Directory,
	// Rust builder image (needs cargo; rustup or Debian's libstd-rust-dev for cross targets).
	// +optional
	rustBuilder string,
	// Rust runtime image (glibc, no shell needed).
	// +optional
	rustRuntime string,
	// Python builder image (python3 with venv).
	// +optional
	pythonBuilder string,
	// Python runtime image; must have python3 at the same path as the builder.
	// +optional
	pythonRuntime string,
	// Node.js builder image (node and npm).
	// +optional
	nodeBuilder string,
	// Node.js runtime image (node).
	// +optional
	nodeRuntime string,
	// Image with a POSIX shell and tar, for unpacking image archives
	// (debian:bookworm-slim).
	// +optional
	toolsImage string,
	// Go module of the botcore CLI (scan, sbom, sign); defaults to this
	// repository's, whatever --source points at.
	// +defaultPath="/"
	// +ignore=["*", "!go.mod", "!go.sum", "!cmd/**", "!pipelines/**", "**/*_test.go", "**/testdata"]
	toolSource *dagger.Directory,
	// Go image that builds the botcore CLI and the health prober
	// (golang:1.26-bookworm).
	// +optional
	goImage string,
	// Go module proxy for that build.
	// +default="https://proxy.golang.org,direct"
	goproxy string,
	// botcore binary to scan, SBOM and sign with instead of compiling it in
	// the engine (about 12 minutes on a fresh engine with 2 cores): build it
	// where Go's caches are warm, for linux and the engine's architecture,
	// e.g. `CGO_ENABLED=0 GOEXPERIMENT=jsonv2 go build -o botcore ./cmd/botcore`.
	// Its sha256 and versions go into release.json and the provenance.
	// +optional
	tool *dagger.File,
	// Lockfile pinning every image above by digest; defaults to the
	// source's images.lock. An image given by flag wins over its entry.
	// Without a lockfile the images are used by tag (and the digests they
	// resolved to are recorded in the provenance).
	// +optional
	imagesLock *dagger.File,
	// The checkout whose HEAD's commit time stamps the images when
	// --source-date-epoch is not given (only its .git is read); defaults to
	// this repository. Pass the same directory as --source when that is
	// another checkout.
	// +defaultPath="/"
	// +ignore=["*", "!.git", "!.git/**"]
	// +optional
	git *dagger.Directory,
	// Secret the keys Next.js would draw at random in every build (preview
	// mode, server actions encryption) are derived from, e.g.
	// env:BOTCORE_BUILD_KEY: with it, rebuilding a Next.js service gives
	// the same image; without it, never. Keep it as secret as a signing key.
	// +optional
	buildKey *dagger.Secret,
) *BotCore {
	return &BotCore{
		Source:      source,
		RustBuilder: rustBuilder, RustRuntime: rustRuntime,
		PythonBuilder: pythonBuilder, PythonRuntime: pythonRuntime,
		NodeBuilder: nodeBuilder, NodeRuntime: nodeRuntime,
		ToolsImage: toolsImage, ImagesLock: imagesLock,
		ToolSource: toolSource, GoImage: goImage, GoProxy: goproxy, Tool: tool, Git: git, BuildKey: buildKey,
	}
}

// Smoke prints the machine name (`uname -m`) seen inside a Debian container
// for one platform: x86_64 for linux/amd64, aarch64 for linux/arm64. It proves
// the engine can run (or emulate) that platform before any real build.
func (m *BotCore) Smoke(
	ctx context.Context,
	// Platform to run on, e.g. linux/arm64.
	// +default="linux/amd64"
	platform dagger.Platform,
) (string, error) {
	if err := m.pin(ctx); err != nil {
		return "", err
	}
	out, err := dag.Container(dagger.ContainerOpts{Platform: platform}).
		From(m.ToolsImage).
		WithExec([]string{"uname", "-m"}).
		Stdout(ctx)
	return strings.TrimSpace(out), err
}

// Services lists the services declared in services.yaml (or the default
// three), one per line: name, builder (language or dockerfile), path, port
// and health check (the path, or the health-command).
func (m *BotCore) Services(ctx context.Context) (string, error) {
	man, err := m.manifest(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, s := range man.Services {
		health := s.Health
		if s.HealthCommand != nil {
			health = strings.Join(s.HealthCommand, " ")
		}
		fmt.Fprintf(&b, "%s\t%s\t%s\t%d\t%s\n", s.Name, s.Builder(), s.Path, s.Port, health)
	}
	return b.String(), nil
}

// Build builds one service for one platform and returns its runtime container.
func (m *BotCore) Build(
	ctx context.Context,
	// Service name from services.yaml, e.g. rust-core-engine.
	service string,
	// Target platform.
	// +default="linux/amd64"
	platform dagger.Platform,
	// Release version recorded in the image labels (semver, e.g. v1.0.0).
	// +optional
	version string,
	// SOURCE_DATE_EPOCH, as for build-all: by default the commit time of
	// the checkout's HEAD.
	// +default=-1
	sourceDateEpoch int,
	// Build secrets the service's Dockerfile mounts, as for build-all.
	// +optional
	buildSecrets []*dagger.Secret,
	// pip's index, as for build-all.
	// +optional
	pipIndexUrl string,
	// pip's extra indexes, as for build-all.
	// +optional
	pipExtraIndexUrl []string,
	// pip's find-links pages, as for build-all.
	// +optional
	pipFindLinks []string,
	// user:password for the pip indexes' hosts, as for build-all.
	// +optional
	pipCredentials *dagger.Secret,
	// The npm registry, as for build-all.
	// +optional
	npmRegistry string,
	// The npm registry's token, as for build-all.
	// +optional
	npmToken *dagger.Secret,
	// The cargo registry mirroring crates.io, as for build-all.
	// +optional
	cargoRegistry string,
	// The cargo registry's token, as for build-all.
	// +optional
	cargoToken *dagger.Secret,
) (_ *dagger.Container, rerr error) {
	defer func() { rerr = wholeError(rerr) }()
	if err := m.pin(ctx); err != nil {
		return nil, err
	}
	man, err := m.manifest(ctx)
	if err != nil {
		return nil, err
	}
	svcs, err := man.Select([]string{service})
	if err != nil {
		return nil, err
	}
	if _, err := services.ParsePlatforms(string(platform)); err != nil {
		return nil, err
	}
	if sourceDateEpoch == epochFromSource {
		if sourceDateEpoch, err = m.sourceDate(ctx); err != nil {
			return nil, err
		}
	}
	lbl, _, err := plan.ImageLabels(version, "", "", sourceDateEpoch)
	if err != nil {
		return nil, withFlag(err)
	}
	secrets, err := matchBuildSecrets(ctx, svcs, buildSecrets)
	if err != nil {
		return nil, err
	}
	idx, err := packageIndexes(indexFlags{pipIndexUrl, pipExtraIndexUrl, pipFindLinks, pipCredentials, npmRegistry, npmToken, cargoRegistry, cargoToken})
	if err != nil {
		return nil, err
	}
	ctr, err := m.build(ctx, svcs[0], platform, sourceDateEpoch, secrets, idx)
	if err != nil {
		return nil, err
	}
	return builder.WithLabels(ctr, lbl), nil
}

// build is one service's runtime container for p, without the release's
// labels (builder.WithLabels).
func (m *BotCore) build(ctx context.Context, s services.Service, p dagger.Platform, epoch int, secrets map[string]*dagger.Secret, idx builder.Indexes) (*dagger.Container, error) {
	buildPlatform, err := dag.DefaultPlatform(ctx)
	if err != nil {
		return nil, err
	}
	return builder.Build(ctx, dag, builder.Spec{
		Service:       s,
		Source:        m.Source.Directory(s.Path),
		Platform:      p,
		BuildPlatform: buildPlatform,
		Images:        m.images(),
		Epoch:         epoch,
		Secrets:       secretsOf(s, secrets),
		Indexes:       idx,
		Probe:         m.probeFor(s, p),
		BuildKey:      m.BuildKey,
		BuildKeyID:    m.buildKeyID,
	})
}

// manifest reads services.yaml at the source root, or falls back to the
// three bot-core services at the root when there is none.
func (m *BotCore) manifest(ctx context.Context) (services.Manifest, error) {
	found, err := m.Source.Glob(ctx, services.ManifestFile)
	if err != nil {
		return services.Manifest{}, err
	}
	if len(found) == 0 {
		return services.Default(), nil
	}
	data, err := m.Source.File(services.ManifestFile).Contents(ctx)
	if err != nil {
		return services.Manifest{}, err
	}
	return services.ParseManifest([]byte(data))
}

// optionalFile is the source's file at path, nil when it has none.
func (m *BotCore) optionalFile(ctx context.Context, path string) (*dagger.File, error) {
	return fileIn(ctx, m.Source, path)
}

// fileIn is dir's file at path, nil when it has none.
func fileIn(ctx context.Context, dir *dagger.Directory, path string) (*dagger.File, error) {
	found, err := dir.Glob(ctx, path)
	if err != nil || len(found) == 0 {
		return nil, err
	}
	return dir.File(path), nil
}
