package publish

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/bot-core/delivery/pipelines/tags"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TagState is what became of one tag in the tag step.
type TagState string

const (
	// TagMoved: the tag points at the release.
	TagMoved TagState = "moved"
	// TagUnchanged: the tag already pointed at the release.
	TagUnchanged TagState = "unchanged"
	// TagNotMoved: the step stopped before this tag.
	TagNotMoved TagState = "not-moved"
	// TagRestored: the tag was moved, then put back where it was (or
	// deleted again when it did not exist).
	TagRestored TagState = "restored"
	// TagLeft: the tag was moved and could not be put back; Before says
	// where it should point.
	TagLeft TagState = "left"
	// TagHeld: a moving tag left on a newer release (tags.Fit); Reason
	// says which.
	TagHeld TagState = "held"
)

// TagOutcome is one tag of one repository in the tag step.
type TagOutcome struct {
	Tag string `json:"tag"` // repository:tag
	// Before is the digest the tag held before the release; "" when the
	// tag did not exist.
	Before string   `json:"before,omitempty"`
	Target string   `json:"target"`
	State  TagState `json:"state"`
	// Error is why a tag is left (TagLeft).
	Error string `json:"error,omitempty"`
	// Reason is why a tag is held (TagHeld).
	Reason string `json:"reason,omitempty"`
}

// TagError is a tag step that failed: the tags it moved were put back, or
// Outcomes says which could not be.
type TagError struct {
	Err      error
	Outcomes []TagOutcome
}

// Left lists the tags still moved after the roll-back.
func (e *TagError) Left() []TagOutcome {
	var left []TagOutcome
	for _, o := range e.Outcomes {
		if o.State == TagLeft {
			left = append(left, o)
		}
	}
	return left
}

func (e *TagError) Error() string {
	left := e.Left()
	if len(left) == 0 {
		return fmt.Sprintf("%v; every tag moved before the failure was put back where it was, so no tag names this release", e.Err)
	}
	var lines []string
	for _, o := range left {
		was := "did not exist (delete it)"
		if o.Before != "" {
			was = "was " + o.Before
		}
		lines = append(lines, fmt.Sprintf("%s -> %s, %s: %s", o.Tag, o.Target, was, o.Error))
	}
	return fmt.Sprintf("%v; the roll-back could not put back %d tags, which still name this release:\n  %s",
		e.Err, len(left), strings.Join(lines, "\n  "))
}

func (e *TagError) Unwrap() error { return e.Err }

// move is one tag to move, with what it held before.
type move struct {
	tag    name.Tag
	target v1.ImageIndex
	digest string
	before *remote.Descriptor // nil: the tag did not exist
}

// restoreAttempts and restoreBackoff bound the roll-back; the roll-back
// runs even after the caller's context is cancelled (Ctrl-C), within
// restoreTimeout.
var (
	restoreAttempts = 3
	restoreBackoff  = time.Second
	restoreTimeout  = 2 * time.Minute
)

// Tag moves the tags as one transaction: it first reads what every tag
// holds (refusing to move a published version tag to another image, and
// leaving moving tags on newer releases, see plan), then moves them item by
// item with "latest" last of all, and on any
// failure (or cancellation) puts every tag it moved back where it was,
// deleting the ones that did not exist. It returns a *TagError when a tag
// did not move.
func (r Registry) Tag(ctx context.Context, items []Item, results []Result, tagList []string) ([]TagOutcome, error) {
	opts := append([]remote.Option{remote.WithContext(ctx)}, r.Options...)
	moves, held, err := r.plan(items, results, tagList, opts)
	if err != nil {
		return nil, fmt.Errorf("no tag was moved: %w", err)
	}
	outcomes := make([]TagOutcome, len(moves), len(moves)+len(held))
	for i, m := range moves {
		outcomes[i] = TagOutcome{Tag: m.tag.String(), Target: m.digest, State: TagNotMoved}
		if m.before != nil {
			outcomes[i].Before = m.before.Digest.String()
		}
	}
	for i, m := range moves {
		if m.before != nil && m.before.Digest.String() == m.digest {
			outcomes[i].State = TagUnchanged
			continue
		}
		r.Progress.printf("tagging %s -> %s", m.tag, m.digest)
		err := ctx.Err()
		if err == nil {
			err = remote.Tag(m.tag, m.target, opts...)
		}
		if err != nil {
			// A PUT that failed may still have landed: put this tag back too.
			outcomes[i].State = TagMoved
			terr := r.rollBack(ctx, moves, outcomes, fmt.Errorf("tag %s: %w", m.tag, err))
			terr.Outcomes = append(terr.Outcomes, held...)
			return terr.Outcomes, terr
		}
		outcomes[i].State = TagMoved
	}
	return append(outcomes, held...), nil
}

// plan fits the tags to each repository (tags.Fit: no moving tag goes
// backwards), orders the moves and records what each tag holds now. A
// published version tag (v1.2.3) naming another image stops the release
// before any tag moves.
func (r Registry) plan(items []Item, results []Result, tagList []string, opts []remote.Option) ([]move, []TagOutcome, error) {
	fitted := make([][]string, len(items))
	var held []TagOutcome
	for i, it := range items {
		existing, err := remote.List(it.Repo, opts...)
		if err != nil && !registry.IsNotFound(err) {
			return nil, nil, fmt.Errorf("listing the tags of %s: %w", it.Repo, err)
		}
		var kept []tags.Held
		fitted[i], kept = tags.Fit(tagList, existing)
		for _, h := range kept {
			r.Progress.printf("leaving %s where it is: %s", it.Repo.Tag(h.Tag), h.Reason)
			held = append(held, TagOutcome{Tag: it.Repo.Tag(h.Tag).String(), Target: results[i].Digest.DigestStr(), State: TagHeld, Reason: h.Reason})
		}
	}
	// latest moves last of all, so it never names a release whose version
	// tags failed: production pulling latest sees one release or the other.
	var moves []move
	for _, latest := range []bool{false, true} {
		for i, it := range items {
			for _, t := range fitted[i] {
				if (t == "latest") == latest {
					moves = append(moves, move{tag: it.Repo.Tag(t), target: it.Index, digest: results[i].Digest.DigestStr()})
				}
			}
		}
	}
	var taken []string
	for i := range moves {
		m := &moves[i]
		d, err := remote.Get(m.tag, opts...)
		switch {
		case err == nil:
			m.before = d
			if tags.IsVersion(m.tag.TagStr()) && d.Digest.String() != m.digest {
				if r.ForceRetag {
					r.Progress.printf("moving the published %s from %s on request (force retag)", m.tag, d.Digest)
					continue
				}
				taken = append(taken, fmt.Sprintf("%s names %s", m.tag, d.Digest))
			}
		case registry.IsNotFound(err):
		default:
			return nil, nil, fmt.Errorf("%s: %w", m.tag, err)
		}
	}
	if len(taken) > 0 {
		return nil, nil, fmt.Errorf("%w: %s; release a new version", ErrVersionTaken, strings.Join(taken, ", "))
	}
	return moves, held, nil
}

// ErrVersionTaken: a version tag already names another image. A published
// version is never moved: whoever pulled v1.2.3 must get what was signed
// and recorded as v1.2.3.
var ErrVersionTaken = errors.New("a published version is never moved to another image")

// rollBack puts every moved tag back, newest move first, and returns the
// TagError for cause.
func (r Registry) rollBack(ctx context.Context, moves []move, outcomes []TagOutcome, cause error) *TagError {
	if ctx.Err() != nil {
		cause = fmt.Errorf("interrupted: %w", cause)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	opts := append(slices.Clone(r.Options), remote.WithContext(rctx))
	for i := len(moves) - 1; i >= 0; i-- {
		if outcomes[i].State != TagMoved {
			continue
		}
		m := moves[i]
		var err error
		for attempt := 0; attempt < restoreAttempts; attempt++ {
			if attempt > 0 {
				time.Sleep(restoreBackoff << (attempt - 1))
			}
			if err = restore(m, opts); err == nil {
				break
			}
		}
		if err != nil {
			outcomes[i].State, outcomes[i].Error = TagLeft, err.Error()
			r.Progress.printf("could not put back %s: %v", m.tag, err)
			continue
		}
		outcomes[i].State = TagRestored
		if m.before == nil {
			r.Progress.printf("deleted %s again (it did not exist before)", m.tag)
		} else {
			r.Progress.printf("put back %s -> %s", m.tag, m.before.Digest)
		}
	}
	return &TagError{Err: cause, Outcomes: outcomes}
}

// restore puts one tag back. When the registry refuses, the tag may still
// be where it was (the failed PUT never landed): what it names now decides.
func restore(m move, opts []remote.Option) error {
	var err error
	if m.before != nil {
		err = remote.Tag(m.tag, m.before, opts...)
	} else if err = remote.Delete(m.tag, opts...); registry.IsNotFound(err) {
		return nil
	}
	if err == nil {
		return nil
	}
	now, herr := remote.Head(m.tag, opts...)
	switch {
	case m.before == nil && registry.IsNotFound(herr):
		return nil
	case m.before != nil && herr == nil && now.Digest == m.before.Digest:
		return nil
	}
	return err
}
