package main

import (
	"dagger/bot-core/internal/dagger"
)

// botcoreBin is where the tool container keeps the botcore CLI.
const botcoreBin = "/usr/local/bin/botcore"

// tools is a container holding the botcore CLI built from this repository:
// scan (Trivy), sbom (Syft), sign/attest (cosign) all run from it, so the
// pipeline needs no third-party tool image. Only the Go module's files take
// part (see New's toolSource), so changing a service or a doc reuses the
// cached binary; the module and build caches make a Go change incremental.
func (m *BotCore) tools() *dagger.Container {
	src := m.ToolSource
	bin := dag.Container().From(m.GoImage).
		WithEnvVariable("GOEXPERIMENT", "jsonv2"). // trivy's packages require it
		WithEnvVariable("CGO_ENABLED", "0").
		WithEnvVariable("GOFLAGS", "-mod=readonly").
		WithEnvVariable("GOPROXY", m.GoProxy).
		WithEnvVariable("GOTOOLCHAIN", "local").
		WithMountedCache("/go/pkg/mod", dag.CacheVolume("bot-core-go-mod")).
		WithMountedCache("/root/.cache/go-build", dag.CacheVolume("bot-core-go-build")).
		WithMountedDirectory("/src", src).
		WithWorkdir("/src").
		WithExec([]string{"go", "build", "-trimpath", "-ldflags", "-s -w", "-o", "/out/botcore", "./cmd/botcore"}).
		File("/out/botcore")
	// The runtime is the same image without the caches or the source: it has
	// CA certificates for online use (Trivy DB, Fulcio, Rekor) and a shell.
	return dag.Container().From(m.GoImage).
		WithFile(botcoreBin, bin).
		WithWorkdir("/work")
}

// Botcore returns the container build-all runs its supply-chain tools in:
// the botcore CLI built from this repository, e.g.
// `dagger call botcore with-exec --args botcore,--help stdout`.
func (m *BotCore) Botcore() *dagger.Container {
	return m.tools()
}
