// Package publish pushes release images to a registry so that a failed
// release moves no tag: every service's index is pushed by digest first, all
// of them are checked to be present, and only then do the human tags
// (v1.2.3, latest, ...) move.
package publish

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Item is one service's multi-platform index bound for a repository.
type Item struct {
	Repo  name.Repository
	Index v1.ImageIndex
}

// Result is where an item landed.
type Result struct {
	Digest name.Digest
}

// Progress receives one line per step; nil discards them.
type Progress func(format string, args ...any)

// Release pushes every item by digest (Push), then moves every tag (Tag).
func Release(ctx context.Context, items []Item, tags []string, progress Progress, opts ...remote.Option) ([]Result, error) {
	results, err := Push(ctx, items, progress, opts...)
	if err != nil {
		return nil, err
	}
	return results, Tag(ctx, items, results, tags, progress, opts...)
}

// Push pushes every item by digest and verifies each digest resolves; no tag
// is touched, so a failed push, or a failure between Push and Tag (a
// signature that could not be made), leaves every existing tag where it was.
// The error names the service's repository.
func Push(ctx context.Context, items []Item, progress Progress, opts ...remote.Option) ([]Result, error) {
	if progress == nil {
		progress = func(string, ...any) {}
	}
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	results := make([]Result, len(items))
	for i, it := range items {
		d, err := it.Index.Digest()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", it.Repo, err)
		}
		ref := it.Repo.Digest(d.String())
		progress("pushing %s", ref)
		if err := remote.WriteIndex(ref, it.Index, opts...); err != nil {
			return nil, fmt.Errorf("push %s (no tags were moved): %w", ref, err)
		}
		results[i] = Result{Digest: ref}
	}
	// A registry may accept a manifest and still fail to serve it (a proxy,
	// a replication lag): read every digest back before any tag moves.
	for _, r := range results {
		if _, err := remote.Head(r.Digest, opts...); err != nil {
			return nil, fmt.Errorf("check %s after push (no tags were moved): %w", r.Digest, err)
		}
	}
	return results, nil
}

// Tag points every tag of every item at the digest Push returned for it.
func Tag(ctx context.Context, items []Item, results []Result, tags []string, progress Progress, opts ...remote.Option) error {
	if progress == nil {
		progress = func(string, ...any) {}
	}
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	var errs []error
	for i, it := range items {
		for _, t := range tags {
			tag := it.Repo.Tag(t)
			progress("tagging %s -> %s", tag, results[i].Digest.DigestStr())
			if err := remote.Tag(tag, it.Index, opts...); err != nil {
				errs = append(errs, fmt.Errorf("tag %s: %w", tag, err))
			}
		}
	}
	return errors.Join(errs...)
}

// LoadIndex reads the multi-platform index of an OCI image layout whose
// index.json points at exactly one image index, as build-all writes it.
func LoadIndex(dir string) (v1.ImageIndex, error) {
	root, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("read OCI layout %s: %w", dir, err)
	}
	m, err := root.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsIndex() {
		return nil, fmt.Errorf("OCI layout %s: want index.json to hold one image index, found %d entries", dir, len(m.Manifests))
	}
	return root.ImageIndex(m.Manifests[0].Digest)
}

// Platforms maps each platform ("linux/arm64") in an index to its manifest digest.
func Platforms(idx v1.ImageIndex) (map[string]string, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, d := range m.Manifests {
		if d.Platform == nil {
			continue
		}
		out[d.Platform.String()] = d.Digest.String()
	}
	return out, nil
}
