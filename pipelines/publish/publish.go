// Package publish puts release images where users pull them so that a failed
// release moves no tag: every service's index is pushed by digest first and
// read back, then the caller's approval step runs (signing), and only when
// all of that succeeded do the human tags (v1.2.3, latest, ...) move.
package publish

import (
	"context"
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

func (p Progress) printf(format string, args ...any) {
	if p != nil {
		p(format, args...)
	}
}

// Publisher is a place release images go: by digest first, named by tags later.
type Publisher interface {
	// Push makes every item available by digest; it moves no tag.
	Push(ctx context.Context, items []Item) ([]Result, error)
	// Tag points every tag of every item at the digest Push returned for
	// it, all or none: a failure puts back the tags already moved. The
	// outcomes say what became of each tag, also on failure.
	Tag(ctx context.Context, items []Item, results []Result, tags []string) ([]TagOutcome, error)
}

// Outcome is how far a release got: what was pushed, the last step that
// completed ("" when the push failed) and what became of every tag. A
// release record is written from it whether the release succeeded or not.
type Outcome struct {
	Pushed []Result
	Done   string
	Tags   []TagOutcome
}

// Steps of a release, in order; Hooks.Step hears each as it starts.
const (
	StepPush = "publish"
	StepSign = "sign+attest"
	StepTag  = "tag"
)

// Hooks let the caller take part in a release.
type Hooks struct {
	// Sign runs after every item is pushed and before any tag moves: a
	// failure here leaves every tag where it was. Nil skips signing.
	Sign func(ctx context.Context, pushed []Result) error
	// Step is told when each step starts (for timing and logs); nil is silent.
	Step func(step string)
}

// Release pushes every item, signs what was pushed, then moves the tags: the
// order that makes a failed push or signature leave no tag behind.
func Release(ctx context.Context, p Publisher, items []Item, tags []string, h Hooks) (Outcome, error) {
	var o Outcome
	step := func(s string) {
		if h.Step != nil {
			h.Step(s)
		}
	}
	step(StepPush)
	pushed, err := p.Push(ctx, items)
	if err != nil {
		return o, err
	}
	if len(pushed) != len(items) {
		return o, fmt.Errorf("publisher returned %d results for %d items (no tags were moved)", len(pushed), len(items))
	}
	o.Pushed, o.Done = pushed, StepPush
	if h.Sign != nil {
		step(StepSign)
		if err := h.Sign(ctx, pushed); err != nil {
			return o, fmt.Errorf("signing failed, no tag was moved: %w", err)
		}
		o.Done = StepSign
	}
	step(StepTag)
	o.Tags, err = p.Tag(ctx, items, pushed, tags)
	if err == nil {
		o.Done = StepTag
	}
	return o, err
}

// Registry publishes to a container registry.
type Registry struct {
	Options  []remote.Option
	Progress Progress
	// ForceRetag moves a published version tag (v1.2.3) that names another
	// image; without it such a release stops before any tag moves.
	ForceRetag bool
}

// Push pushes every item by digest and reads each digest back; a registry
// may accept a manifest and still fail to serve it (a proxy, replication
// lag), and no tag may move onto a digest that does not resolve.
func (r Registry) Push(ctx context.Context, items []Item) ([]Result, error) {
	opts := append([]remote.Option{remote.WithContext(ctx)}, r.Options...)
	results := make([]Result, len(items))
	for i, it := range items {
		d, err := it.Index.Digest()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", it.Repo, err)
		}
		ref := it.Repo.Digest(d.String())
		r.Progress.printf("pushing %s", ref)
		if err := remote.WriteIndex(ref, it.Index, opts...); err != nil {
			return nil, fmt.Errorf("push %s (no tags were moved): %w", ref, err)
		}
		results[i] = Result{Digest: ref}
	}
	for _, res := range results {
		if _, err := remote.Head(res.Digest, opts...); err != nil {
			return nil, fmt.Errorf("check %s after push (no tags were moved): %w", res.Digest, err)
		}
	}
	return results, nil
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
