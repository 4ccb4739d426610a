package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"

	"dagger/bot-core/internal/dagger"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bot-core/delivery/pipelines/publish"
)

// Where a release's images go: exported as OCI layouts in the release
// directory (the default, no credentials needed), or published to a registry.
// Both are stages; BuildAll picks one.

// exportStage puts every service's layout under images/<service>.
type exportStage struct{}

func (exportStage) String() string { return "export" }

func (exportStage) Run(_ context.Context, r *run) error {
	for _, a := range r.arts {
		a.record.Layout = filepath.Join("images", a.service.Name)
		r.out = r.out.WithDirectory(a.record.Layout, a.layout.Dir)
	}
	return nil
}

// registryStage pushes every index by digest, signs what it pushed and only
// then moves the tags (publish.Release keeps that order).
type registryStage struct {
	m        *BotCore
	username string
	password *dagger.Secret
	tunnel   *dagger.Service // the registry on the caller's machine, if it is there
	sign     signer
	// forceRetag lets a published version tag move (build-all --force-retag).
	forceRetag bool
}

func (registryStage) String() string { return "publish" }

func (s registryStage) Run(ctx context.Context, r *run) error {
	r.rel.Registry = r.plan.Registry.Prefix()
	var items []publish.Item
	for _, a := range r.arts {
		repo, err := r.plan.Repo(a.service.Name)
		if err != nil {
			return err
		}
		// Publishing needs the blobs here, where the registry client runs.
		local := filepath.Join("publish", a.service.Name)
		if _, err := a.layout.Dir.Export(ctx, local); err != nil {
			return fmt.Errorf("export %s: %w", a.service.Name, err)
		}
		idx, err := publish.LoadIndex(local)
		if err != nil {
			return err
		}
		if d, _ := idx.Digest(); d.String() != a.layout.IndexDigest {
			return fmt.Errorf("export %s: layout index %s, expected %s", a.service.Name, d, a.layout.IndexDigest)
		}
		a.record.Image = repo.Name()
		items = append(items, publish.Item{Repo: repo, Index: idx})
	}
	opts, err := s.options(ctx, r)
	if err != nil {
		return err
	}
	hooks := publish.Hooks{Step: r.clock.lap}
	if r.plan.Signing != "" {
		hooks.Sign = func(ctx context.Context, _ []publish.Result) error { return s.sign.all(ctx, s, r) }
	}
	progress := func(f string, a ...any) { fmt.Printf(f+"\n", a...) }
	reg := publish.Registry{Options: opts, Progress: progress, ForceRetag: s.forceRetag}
	outcome, err := publish.Release(ctx, reg, items, r.plan.Tags, hooks)
	if errors.Is(err, publish.ErrVersionTaken) {
		err = fmt.Errorf("%w (--force-retag moves it on purpose)", err)
	}
	r.rel.RecordPublish(outcome, err)
	return err
}

// options authenticate with the given credentials (anonymous without them)
// and, with a tunnel, dial the tunnel for the registry's host while keeping
// the registry's own name in every reference.
func (s registryStage) options(ctx context.Context, r *run) ([]remote.Option, error) {
	auth := authn.Anonymous
	if s.password != nil {
		pw, err := s.password.Plaintext(ctx)
		if err != nil {
			return nil, err
		}
		auth = authn.FromConfig(authn.AuthConfig{Username: s.username, Password: pw})
	}
	// publish.Transport: a response deadline and 429s retried, so a
	// stalled or rate-limiting registry neither hangs nor half-tags a release.
	opts := []remote.Option{remote.WithAuth(auth)}
	if s.tunnel == nil {
		return append(opts, remote.WithTransport(publish.Transport(nil))), nil
	}
	endpoint, err := startTunnel(ctx, s.tunnel)
	if err != nil {
		return nil, fmt.Errorf("registry tunnel: %w", err)
	}
	host := r.plan.Registry.Registry
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == host || addr == host+":443" || addr == host+":80" {
			addr = endpoint
		}
		return dial(ctx, network, addr)
	}
	return append(opts, remote.WithTransport(publish.Transport(tr))), nil
}

// startTunnel starts a service and returns the host:port it answers on.
func startTunnel(ctx context.Context, svc *dagger.Service) (string, error) {
	if _, err := svc.Start(ctx); err != nil {
		return "", err
	}
	return svc.Endpoint(ctx)
}
