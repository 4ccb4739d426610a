package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"dagger/bot-core/internal/dagger"

	"golang.org/x/sync/errgroup"

	"dagger/bot-core/builder"

	"github.com/bot-core/delivery/pipelines/pkgindex"
	"github.com/bot-core/delivery/pipelines/release"
	"github.com/bot-core/delivery/pipelines/services"
)

// buildStage builds every service × platform at once (the engine schedules
// them) and gathers each service's platforms into one OCI image layout.
type buildStage struct {
	m *BotCore
	// secrets are the build secrets by id (see matchBuildSecrets).
	secrets map[string]*dagger.Secret
	indexes builder.Indexes
}

func (buildStage) String() string { return "build" }

func (s buildStage) Run(ctx context.Context, r *run) error {
	eg, gctx := errgroup.WithContext(ctx)
	for _, a := range r.arts {
		for j, p := range r.plan.Platforms {
			eg.Go(func() error {
				c, err := s.m.build(gctx, a.service, dagger.Platform(p), r.plan.Epoch, s.secrets, s.indexes)
				if err != nil {
					return err
				}
				if a.unlabelled[j], err = c.Sync(gctx); err != nil {
					return fmt.Errorf("build %s for %s: %w", a.service.Name, p, err)
				}
				return nil
			})
		}
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	eg, gctx = errgroup.WithContext(ctx)
	for _, a := range r.arts {
		eg.Go(func() error {
			lay, err := s.m.exportLayout(gctx, a.unlabelled, r.plan.Epoch, r.plan.Labels)
			if err != nil {
				return fmt.Errorf("export %s: %w", a.service.Name, err)
			}
			a.layout = lay
			a.record = release.Service{Name: a.service.Name, IndexDigest: lay.IndexDigest, Platforms: lay.Platforms, Sizes: lay.Sizes,
				Reports: map[string]release.Reports{}}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	r.rel.State = release.StateBuilt
	return nil
}

// matchBuildSecrets pairs the ids the services' Dockerfiles mount with the
// secrets given to build-all, so that a missing one stops the release before
// anything is built. BuildKit mounts a secret under its name
// (/run/secrets/ID); a secret given on the command line has none, so its id
// is what its address names (env://ID, file://.../ID) and it is handed to the
// build under that name.
func matchBuildSecrets(ctx context.Context, svcs []services.Service, given []*dagger.Secret) (map[string]*dagger.Secret, error) {
	byID := map[string]*dagger.Secret{}
	for _, sec := range given {
		id, named, err := buildSecretID(ctx, sec)
		if err != nil {
			return nil, err
		}
		if !named {
			plain, err := sec.Plaintext(ctx)
			if err != nil {
				return nil, fmt.Errorf("build secret %s: %w", id, err)
			}
			sec = dag.SetSecret(id, plain)
		}
		byID[id] = sec
	}
	out := map[string]*dagger.Secret{}
	var missing []string
	for _, id := range services.SecretIDs(svcs) {
		if sec, ok := byID[id]; ok {
			out[id] = sec
			continue
		}
		missing = append(missing, id)
	}
	if len(missing) > 0 {
		var users []string
		for _, s := range svcs {
			if slices.ContainsFunc(s.Secrets, func(id string) bool { return slices.Contains(missing, id) }) {
				users = append(users, s.Name)
			}
		}
		return nil, fmt.Errorf("build secret %s (listed under secrets: of %s) was not given: pass each to build-all as --build-secrets env://ID or file://PATH/ID, e.g. --build-secrets env://%s (given: %s)",
			strings.Join(missing, ", "), strings.Join(users, ", "), missing[0], orNone(slices.Sorted(maps.Keys(byID))))
	}
	return out, nil
}

// buildSecretID is the id a given secret stands for: its name when it has
// one (a module's SetSecret), else the last part of its address.
func buildSecretID(ctx context.Context, sec *dagger.Secret) (id string, named bool, err error) {
	if name, err := sec.Name(ctx); err != nil || name != "" {
		return name, true, err
	}
	uri, err := sec.URI(ctx)
	if err != nil {
		return "", false, err
	}
	scheme, rest, _ := strings.Cut(uri, "://")
	rest, _, _ = strings.Cut(rest, "?")
	switch scheme {
	case "env":
		id = rest
	case "file":
		id = path.Base(rest)
	default:
		return "", false, fmt.Errorf("a --build-secrets secret given as %s://...: give build secrets as env://ID or file://PATH/ID, where ID is the id the Dockerfile mounts", scheme)
	}
	if err := services.ValidateSecretID(id); err != nil {
		return "", false, fmt.Errorf("--build-secrets %s://...: %w", scheme, err)
	}
	return id, false, nil
}

// secretsOf are the secrets s's Dockerfile mounts, in its order.
func secretsOf(s services.Service, byID map[string]*dagger.Secret) []*dagger.Secret {
	var out []*dagger.Secret
	for _, id := range s.Secrets {
		out = append(out, byID[id])
	}
	return out
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// packageIndexes checks the package index flags before anything is built.
func packageIndexes(f indexFlags) (builder.Indexes, error) {
	pip := builder.PipIndex{Pip: pkgindex.Pip{IndexURL: f.pipIndexURL, ExtraIndexURLs: f.pipExtraIndexURLs, FindLinks: f.pipFindLinks,
		WithCredentials: f.pipCredentials != nil}, Credentials: f.pipCredentials}
	npm := builder.NpmRegistry{Npm: pkgindex.Npm{Registry: f.npmRegistry, WithToken: f.npmToken != nil}, Token: f.npmToken}
	cargo := builder.CargoRegistry{Cargo: pkgindex.Cargo{Registry: f.cargoRegistry, WithToken: f.cargoToken != nil}, Token: f.cargoToken}
	if err := errors.Join(pip.Check(), npm.Check(), cargo.Check()); err != nil {
		return builder.Indexes{}, err
	}
	return builder.Indexes{Pip: pip, Npm: npm, Cargo: cargo}, nil
}

// indexFlags are build-all's (and build's) package index flags.
type indexFlags struct {
	pipIndexURL       string
	pipExtraIndexURLs []string
	pipFindLinks      []string
	pipCredentials    *dagger.Secret
	npmRegistry       string
	npmToken          *dagger.Secret
	cargoRegistry     string
	cargoToken        *dagger.Secret
}
