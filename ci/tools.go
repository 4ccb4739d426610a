package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/release"
)

// supplychain is the reusable module (modules/supplychain) that runs the
// botcore tool: scan (Trivy), sbom (Syft), sign/attest (cosign), the binary
// given as --tool or else built from this repository's Go module in the
// given Go image.
func (m *BotCore) supplychain() *dagger.Supplychain {
	return dag.Supplychain(dagger.SupplychainOpts{ToolSource: m.ToolSource, GoImage: m.GoImage, Goproxy: m.GoProxy, Tool: m.Tool})
}

// toolIdentity starts reading the identity of the botcore tool and returns
// the wait for it. A given binary is checked before anything else, so one
// that cannot run ends the release before any build; a tool the engine must
// compile is compiled alongside the builds instead of after them.
func (m *BotCore) toolIdentity(ctx context.Context) (func() (*release.Tool, error), error) {
	source := "engine"
	if m.Tool != nil {
		source = "given"
	}
	type result struct {
		tool *release.Tool
		err  error
	}
	done := make(chan result, 1)
	go func() {
		js, err := m.supplychain().Identity(ctx)
		if err != nil {
			done <- result{err: fmt.Errorf("botcore tool: %w", err)}
			return
		}
		var t release.Tool
		if err := json.Unmarshal([]byte(js), &t); err != nil {
			done <- result{err: fmt.Errorf("botcore tool: version --json printed %q: %w", js, err)}
			return
		}
		t.Source = source
		fmt.Printf("botcore tool (%s): %s sha256:%s\n", source, t.Version, t.SHA256)
		done <- result{tool: &t}
	}()
	wait := sync.OnceValues(func() (*release.Tool, error) {
		r := <-done
		return r.tool, r.err
	})
	if m.Tool != nil {
		if _, err := wait(); err != nil {
			return nil, err
		}
	}
	return wait, nil
}

// Botcore returns the container build-all runs its supply-chain tools in:
// the botcore CLI built from this repository, e.g.
// `dagger call botcore with-exec --args botcore,--help stdout`.
func (m *BotCore) Botcore(ctx context.Context) (*dagger.Container, error) {
	if err := m.pin(ctx); err != nil {
		return nil, err
	}
	return m.supplychain().Tools(), nil
}
