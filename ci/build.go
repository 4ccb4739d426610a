package main

import (
	"context"
	"fmt"

	"dagger/bot-core/internal/dagger"

	"golang.org/x/sync/errgroup"

	"github.com/bot-core/delivery/pipelines/release"
)

// buildStage builds every service × platform at once (the engine schedules
// them) and gathers each service's platforms into one OCI image layout.
type buildStage struct{ m *BotCore }

func (buildStage) String() string { return "build" }

func (s buildStage) Run(ctx context.Context, r *run) error {
	eg, gctx := errgroup.WithContext(ctx)
	for _, a := range r.arts {
		for j, p := range r.plan.Platforms {
			eg.Go(func() error {
				c, err := s.m.build(gctx, a.service, dagger.Platform(p), r.plan.Epoch, r.plan.Labels)
				if err != nil {
					return err
				}
				if a.variants[j], err = c.Sync(gctx); err != nil {
					return fmt.Errorf("build %s for %s: %w", a.service.Name, p, err)
				}
				return nil
			})
		}
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	for _, a := range r.arts {
		lay, err := s.m.exportLayout(ctx, a.variants)
		if err != nil {
			return fmt.Errorf("export %s: %w", a.service.Name, err)
		}
		a.layout = lay
		a.record = release.Service{Name: a.service.Name, IndexDigest: lay.IndexDigest, Platforms: lay.Platforms, Sizes: lay.Sizes,
			Reports: map[string]release.Reports{}}
	}
	r.rel.State = release.StateBuilt
	return nil
}
