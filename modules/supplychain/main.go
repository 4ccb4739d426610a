// Supply-chain steps for container images: a Trivy vulnerability gate with
// JSON and SARIF reports, Syft SPDX SBOMs, and cosign signatures,
// attestations and verification, all run by the botcore CLI (one static Go
// binary built from the repository this module lives in).
//
// It works on what a build produced (an OCI image layout, before anything is
// pushed) and on what a registry holds (references by digest):
//
//	dagger call scan --layout ./image --platform linux/amd64 --name api
//	dagger call sbom --layout ./image --platform linux/amd64 -o sbom.spdx.json
//	dagger call signer --key env:COSIGN_KEY --key-password env:COSIGN_PASSWORD \
//	  with-registry-auth --registry ghcr.io --username me --password env:GHCR_TOKEN \
//	  sign --refs ghcr.io/acme/api@sha256:...
//
// Secrets (keys, passwords, OIDC tokens) only ever reach the tool as secret
// environment variables; they never appear in arguments, plain variables or
// the engine's cache keys.
package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"dagger/supplychain/internal/dagger"
)

// botcoreBin is where Tools keeps the botcore CLI.
const botcoreBin = "/usr/local/bin/botcore"

type Supplychain struct {
	// Go module the botcore CLI is built from.
	ToolSource *dagger.Directory
	// Go image that builds the CLI and runs it.
	GoImage string
	// Go module proxy for that build.
	GoProxy string
	// Tool is a botcore binary the caller built; when set, nothing is
	// compiled in the engine.
	Tool *dagger.File
}

func New(
	// Go module of the botcore CLI (go.mod, go.sum, cmd/, pipelines/);
	// defaults to the repository this module lives in.
	// +defaultPath="/"
	// +ignore=["*", "!go.mod", "!go.sum", "!cmd/**", "!pipelines/**", "**/*_test.go", "**/testdata"]
	toolSource *dagger.Directory,
	// Go image that builds the botcore CLI; also the tools' runtime (CA
	// certificates for Fulcio, Rekor and the Trivy database, and a shell).
	// +default="golang:1.26-bookworm"
	goImage string,
	// Go module proxy for that build.
	// +default="https://proxy.golang.org,direct"
	goproxy string,
	// botcore binary built by the caller for the engine's platform, e.g.
	// `CGO_ENABLED=0 GOEXPERIMENT=jsonv2 go build ./cmd/botcore` on a CI
	// runner whose Go caches are warm: the engine then compiles nothing (a
	// fresh engine spends about 12 minutes compiling it otherwise). It runs
	// in the Go image, which only provides CA certificates and a shell.
	// +optional
	tool *dagger.File,
) *Supplychain {
	return &Supplychain{ToolSource: toolSource, GoImage: goImage, GoProxy: goproxy, Tool: tool}
}

// Tools is the container the tools run in: botcore in the Go image.
//
// The CLI is at /usr/local/bin/botcore, the workdir is /work, e.g.
// `dagger call tools with-exec --args botcore,--help stdout`.
// Only the Go module's files take part, so changing anything else in the
// repository reuses the cached binary; the module and build cache volumes
// make a Go change an incremental build.
func (m *Supplychain) Tools() *dagger.Container {
	// Permissions are set because a binary handed over from a host may
	// arrive without its executable bit.
	return dag.Container().From(m.GoImage).
		WithFile(botcoreBin, m.binary(), dagger.ContainerWithFileOpts{Permissions: 0o755}).
		WithWorkdir("/work")
}

// binary is the caller's botcore when given, else one built from ToolSource.
func (m *Supplychain) binary() *dagger.File {
	if m.Tool != nil {
		return m.Tool
	}
	return dag.Container().From(m.GoImage).
		WithEnvVariable("GOEXPERIMENT", "jsonv2"). // trivy's packages require it
		WithEnvVariable("CGO_ENABLED", "0").
		WithEnvVariable("GOFLAGS", "-mod=readonly").
		WithEnvVariable("GOPROXY", m.GoProxy).
		WithEnvVariable("GOTOOLCHAIN", "local").
		WithMountedCache("/go/pkg/mod", dag.CacheVolume("bot-core-go-mod")).
		WithMountedCache("/root/.cache/go-build", dag.CacheVolume("bot-core-go-build")).
		WithMountedDirectory("/src", m.ToolSource).
		WithWorkdir("/src").
		WithExec([]string{"go", "build", "-trimpath", "-ldflags", "-s -w", "-o", "/out/botcore", "./cmd/botcore"}).
		File("/out/botcore")
}

// Identity is `botcore version --json` of the tool: its sha256, the commit it
// was built from and the Trivy, Syft and cosign versions it links.
func (m *Supplychain) Identity(ctx context.Context) (string, error) {
	out, err := m.Tools().WithExec([]string{botcoreBin, "version", "--json"}).Stdout(ctx)
	if err != nil && m.Tool != nil {
		// A plain error: one wrapping the ExecError would be shown as the
		// exec's exit code and stderr alone, without this sentence.
		why := err.Error()
		var ee *dagger.ExecError
		if errors.As(err, &ee) {
			why = strings.TrimSpace(ee.Stderr)
		}
		return "", fmt.Errorf("the botcore binary given as --tool does not run in the engine's containers (build it for linux and the engine's architecture, static: CGO_ENABLED=0 GOOS=linux GOEXPERIMENT=jsonv2 go build ./cmd/botcore): %s", why)
	}
	return out, err
}

// Sbom writes the SPDX 2.3 JSON SBOM (Syft) of one platform's image.
//
// The image is one platform's of an OCI image layout. Syft's catalog of the
// layers is kept in the cache volume bot-core-syft-catalogs, keyed by Syft's
// version, the platform and the layers' diff IDs: an image that differs
// from one cataloged before only in labels or dates gets its document
// without reading a layer, still naming itself (name, digests, config).
func (m *Supplychain) Sbom(
	// OCI image layout; it may hold a multi-platform index.
	layout *dagger.Directory,
	// Platform to pick from the layout, e.g. linux/amd64 or linux/arm64.
	platform string,
	// Document name, also the name of the image's package in it (default:
	// the image's repository, else "image").
	// +optional
	name string,
) *dagger.File {
	args := []string{botcoreBin, "sbom", "--layout", "/image", "--platform", platform,
		"--catalog-cache", "/catalogs", "--output", "/out/sbom.spdx.json"}
	if name != "" {
		args = append(args, "--name", name)
	}
	return m.Tools().
		WithMountedDirectory("/image", layout).
		WithMountedCache("/catalogs", dag.CacheVolume("bot-core-syft-catalogs")).
		WithExec(args).
		File("/out/sbom.spdx.json")
}

// lastLines keeps the end of a tool's stderr: the verdict and its reasons.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
