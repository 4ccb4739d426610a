package main

import (
	"dagger/bot-core/internal/dagger"
)

// supplychain is the reusable module (modules/supplychain) that runs the
// botcore tool: scan (Trivy), sbom (Syft), sign/attest (cosign), built from
// this repository's Go module in the given Go image.
func (m *BotCore) supplychain() *dagger.Supplychain {
	return dag.Supplychain(dagger.SupplychainOpts{ToolSource: m.ToolSource, GoImage: m.GoImage, Goproxy: m.GoProxy})
}

// Botcore returns the container build-all runs its supply-chain tools in:
// the botcore CLI built from this repository, e.g.
// `dagger call botcore with-exec --args botcore,--help stdout`.
func (m *BotCore) Botcore() *dagger.Container {
	return m.supplychain().Tools()
}
