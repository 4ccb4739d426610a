package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"dagger/bot-core/internal/dagger"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/bot-core/delivery/pipelines/plan"
	"github.com/bot-core/delivery/pipelines/publish"
	"github.com/bot-core/delivery/pipelines/release"
	"github.com/bot-core/delivery/pipelines/tags"
)

// request is what a release is computed from: the version or git state, and
// the source date.
type request struct {
	Version   string
	GitRef    string
	GitSHA    string
	PR        int
	SourceURL string
	Epoch     int
}

func (r request) tags() ([]string, error) {
	if r.Version == "" && r.GitRef == "" && r.PR == 0 {
		return nil, errors.New("nothing to tag: give --version (e.g. v1.0.0), or --git-ref/--git-sha/--pr as CI does")
	}
	// Compute validates the version (semver) and the SHA itself.
	return tags.Compute(tags.Source{Version: r.Version, Ref: r.GitRef, SHA: r.GitSHA, PR: r.PR})
}

func (r request) created() (time.Time, error) {
	if r.Epoch < 0 {
		return time.Time{}, fmt.Errorf("--source-date-epoch %d: must be seconds since 1970, not negative", r.Epoch)
	}
	return tags.CreatedFromEpoch(strconv.Itoa(r.Epoch))
}

func (r request) labels() (map[string]string, error) {
	created, err := r.created()
	if err != nil {
		return nil, err
	}
	if r.Version != "" {
		if err := tags.ValidateVersion(r.Version); err != nil {
			return nil, err
		}
	}
	return tags.Labels(tags.Meta{Version: r.Version, Revision: r.GitSHA, Source: r.SourceURL, Created: created}), nil
}

// BuildAll builds every service for every platform concurrently and returns
// a directory with release.json (service, platform digests, index digest,
// tags), summary.md and, under images/, each service as an OCI image layout
// holding all its platforms. With --registry it then publishes every service
// as one multi-platform index <registry>/<service>: all digests first, the
// tags only once every service is pushed.
//
// +cache="never"
func (m *BotCore) BuildAll(
	ctx context.Context,
	// Release version (semver, e.g. v1.0.0): tags vX.Y.Z, X.Y.Z, X.Y, X and latest.
	// +optional
	version string,
	// Only these services (default: every service in services.yaml).
	// +optional
	services []string,
	// Comma-separated target platforms.
	// +default="linux/amd64,linux/arm64"
	platforms string,
	// Registry prefix to publish to, e.g. ghcr.io/acme/bot-core. Without it nothing is pushed.
	// +optional
	registry string,
	// Registry user name.
	// +optional
	registryUsername string,
	// Registry password or token.
	// +optional
	registryPassword *dagger.Secret,
	// Tunnel to a registry on the caller's machine, e.g. tcp://127.0.0.1:5000:
	// Dagger functions cannot reach the caller's localhost otherwise.
	// +optional
	registryService *dagger.Service,
	// Build and export only, even when --registry is given (the seed's build-only mode).
	// +optional
	buildOnly bool,
	// Git ref being built (refs/heads/main, refs/tags/v1.2.3, refs/pull/7/merge), as CI passes it.
	// +optional
	gitRef string,
	// Commit SHA being built.
	// +optional
	gitSha string,
	// Pull request number: tags pr-N.
	// +optional
	pr int,
	// Repository URL for the org.opencontainers.image.source label.
	// +optional
	sourceUrl string,
	// SOURCE_DATE_EPOCH (the commit time): file times and the created label.
	// +optional
	sourceDateEpoch int,
) (*dagger.Directory, error) {
	req := request{Version: version, GitRef: gitRef, GitSHA: gitSha, PR: pr, SourceURL: sourceUrl, Epoch: sourceDateEpoch}

	// Everything that can be wrong with the input fails here, before any build.
	man, err := m.manifest(ctx)
	if err != nil {
		return nil, err
	}
	svcs, err := man.Select(services)
	if err != nil {
		return nil, err
	}
	plats, err := plan.ParsePlatforms(platforms)
	if err != nil {
		return nil, err
	}
	tagList, err := req.tags()
	if err != nil {
		return nil, err
	}
	labels, err := req.labels()
	if err != nil {
		return nil, err
	}
	created, _ := req.created()
	var repo name.Repository
	publishing := registry != "" && !buildOnly
	if registry != "" {
		if repo, err = plan.ParseRegistry(registry); err != nil {
			return nil, err
		}
	}

	// Build every service × platform at once; the engine schedules them.
	ctrs := make([][]*dagger.Container, len(svcs))
	eg, gctx := errgroup.WithContext(ctx)
	for i, s := range svcs {
		ctrs[i] = make([]*dagger.Container, len(plats))
		for j, p := range plats {
			eg.Go(func() error {
				c, err := m.build(gctx, s, dagger.Platform(p), req.Epoch, labels)
				if err != nil {
					return err
				}
				if c, err = c.Sync(gctx); err != nil {
					return fmt.Errorf("build %s for %s: %w", s.Name, p, err)
				}
				ctrs[i][j] = c
				return nil
			})
		}
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}

	rel := release.Manifest{Version: version, Revision: gitSha, Created: created, Tags: tagList, Platforms: plats}
	result := dag.Directory()
	var items []publish.Item
	for i, s := range svcs {
		lay, err := m.exportLayout(ctx, ctrs[i])
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", s.Name, err)
		}
		rs := release.Service{Name: s.Name, IndexDigest: lay.IndexDigest, Platforms: lay.Platforms, Sizes: lay.Sizes}
		if publishing {
			// Publishing needs the blobs here, where the registry client runs.
			local := filepath.Join("publish", s.Name)
			if _, err := lay.Dir.Export(ctx, local); err != nil {
				return nil, fmt.Errorf("export %s: %w", s.Name, err)
			}
			idx, err := publish.LoadIndex(local)
			if err != nil {
				return nil, err
			}
			if d, _ := idx.Digest(); d.String() != lay.IndexDigest {
				return nil, fmt.Errorf("export %s: layout index %s, expected %s", s.Name, d, lay.IndexDigest)
			}
			svcRepo := repo.Registry.Repo(repo.RepositoryStr(), s.Name)
			rs.Image = svcRepo.Name()
			items = append(items, publish.Item{Repo: svcRepo, Index: idx})
		} else {
			// Unpublished, the images themselves are the release.
			rs.Layout = filepath.Join("images", s.Name)
			result = result.WithDirectory(rs.Layout, lay.Dir)
		}
		rel.Services = append(rel.Services, rs)
	}

	if publishing {
		opts, err := m.registryOptions(ctx, repo, registryUsername, registryPassword, registryService)
		if err != nil {
			return nil, err
		}
		if _, err := publish.Release(ctx, items, tagList, func(f string, a ...any) { fmt.Printf(f+"\n", a...) }, opts...); err != nil {
			return nil, err
		}
		rel.Registry, rel.Published = repo.Name(), true
	}

	js, err := rel.JSON()
	if err != nil {
		return nil, err
	}
	fmt.Print(rel.Summary())
	return result.
		WithNewFile("release.json", string(js)).
		WithNewFile("summary.md", rel.Summary()), nil
}

// registryOptions authenticates with the given credentials (anonymous
// without them) and, with a tunnel, dials the tunnel for the registry's
// host while keeping the registry's own name in every reference.
func (m *BotCore) registryOptions(ctx context.Context, repo name.Repository, user string, password *dagger.Secret, tunnel *dagger.Service) ([]remote.Option, error) {
	auth := authn.Anonymous
	if password != nil {
		pw, err := password.Plaintext(ctx)
		if err != nil {
			return nil, err
		}
		auth = authn.FromConfig(authn.AuthConfig{Username: user, Password: pw})
	}
	opts := []remote.Option{remote.WithAuth(auth)}
	if tunnel != nil {
		if _, err := tunnel.Start(ctx); err != nil {
			return nil, fmt.Errorf("registry tunnel: %w", err)
		}
		endpoint, err := tunnel.Endpoint(ctx)
		if err != nil {
			return nil, fmt.Errorf("registry tunnel: %w", err)
		}
		host := repo.RegistryStr()
		tr := remote.DefaultTransport.(*http.Transport).Clone()
		dial := tr.DialContext
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == host || addr == host+":443" || addr == host+":80" {
				addr = endpoint
			}
			return dial(ctx, network, addr)
		}
		opts = append(opts, remote.WithTransport(tr))
	}
	return opts, nil
}
