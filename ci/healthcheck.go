package main

import (
	_ "embed"

	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/services"
)

// probeSource is botcore-probe (probe/main.go), the HTTP health check the
// pipeline puts into images. It is compiled in the engine for each target
// platform rather than shipped: the module carries only its source.
//
//go:embed probe/main.go
var probeSource string

// probe is botcore-probe compiled for p: cross-compiled on the engine's own
// platform, static, and without a build id, so one source and one Go image
// give the same bytes, and the layer holding it the same digest.
func (m *BotCore) probe(p dagger.Platform) *dagger.File {
	return m.goTool("botcore-probe", probeSource, p)
}

// probeFor is the prober s's image needs: none when its health check is a
// command of its own.
func (m *BotCore) probeFor(s services.Service, p dagger.Platform) *dagger.File {
	if s.HealthCommand != nil {
		return nil
	}
	return m.probe(p)
}
