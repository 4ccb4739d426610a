package main

import (
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/bot-core/delivery/pipelines/services"
)

// checkSources finds, before anything is built, what no build of these
// services could do without: the service's directory and the files its
// builder needs (Cargo.lock, package-lock.json, the Dockerfile). Every
// problem is one line naming the service.
func (m *BotCore) checkSources(ctx context.Context, svcs []services.Service) error {
	var errs []error
	for _, s := range svcs {
		dir := path.Clean(s.Path)
		if _, err := m.Source.Directory(dir).Entries(ctx); err != nil {
			errs = append(errs, fmt.Errorf("service %s: its path %s is not a directory of the source (services.yaml paths are relative to the source root)", s.Name, s.Path))
			continue
		}
		for _, n := range s.NeededFiles() {
			file := path.Join(dir, n.File)
			found, err := m.Source.Glob(ctx, file)
			if err != nil {
				return err
			}
			if len(found) == 0 {
				errs = append(errs, fmt.Errorf("service %s: no %s in %s: %s", s.Name, n.File, s.Path, n.Fix))
			}
		}
	}
	return errors.Join(errs...)
}
