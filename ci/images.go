package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/imagelock"
	"golang.org/x/sync/errgroup"
)

// imageFields are the module's image references by lockfile role, with the
// flag that sets each.
func (m *BotCore) imageFields() map[string]struct {
	ref  *string
	flag string
} {
	type field = struct {
		ref  *string
		flag string
	}
	return map[string]field{
		imagelock.RustBuilder: {&m.RustBuilder, "--rust-builder"}, imagelock.RustRuntime: {&m.RustRuntime, "--rust-runtime"},
		imagelock.PythonBuilder: {&m.PythonBuilder, "--python-builder"}, imagelock.PythonRuntime: {&m.PythonRuntime, "--python-runtime"},
		imagelock.NodeBuilder: {&m.NodeBuilder, "--node-builder"}, imagelock.NodeRuntime: {&m.NodeRuntime, "--node-runtime"},
		imagelock.Go: {&m.GoImage, "--go-image"}, imagelock.Tools: {&m.ToolsImage, "--tools-image"},
	}
}

// readLock is the lockfile (--images-lock, else the source's images.lock)
// and the sha256 of its bytes; nil when there is none.
func (m *BotCore) readLock(ctx context.Context) (imagelock.Lock, string, error) {
	f := m.ImagesLock
	if f == nil {
		var err error
		if f, err = m.optionalFile(ctx, imagelock.File); err != nil || f == nil {
			return nil, "", err
		}
	}
	data, err := f.Contents(ctx)
	if err != nil {
		return nil, "", err
	}
	lock, err := imagelock.Parse([]byte(data))
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256([]byte(data))
	return lock, hex.EncodeToString(sum[:]), nil
}

// pin sets every image the builds start from: a flag's image as given, else
// the lockfile's pinned entry, else (no lockfile at all) the official tag.
// A lockfile with an entry missing or unpinned is an error: a pinned
// release must not quietly float on one tag.
func (m *BotCore) pin(ctx context.Context) error {
	if m.pinned {
		return nil
	}
	lock, sum, err := m.readLock(ctx)
	if err != nil {
		return err
	}
	if lock != nil {
		if err := lock.Pinned(); err != nil {
			return err
		}
	}
	for role, f := range m.imageFields() {
		switch {
		case *f.ref != "" && lock != nil && *f.ref != lock[role]:
			fmt.Printf("images: %s %s (%s) instead of %s's %s\n", role, *f.ref, f.flag, imagelock.File, lock[role])
		case *f.ref != "":
		case lock != nil:
			*f.ref = lock[role]
		default:
			*f.ref = imagelock.Defaults[role]
		}
	}
	if lock == nil {
		fmt.Printf("images: by tag, no %s (dagger call lock-images export --path %s pins them)\n", imagelock.File, imagelock.File)
	}
	if m.BuildKey != nil {
		key, err := m.BuildKey.Plaintext(ctx)
		if err != nil {
			return fmt.Errorf("--build-key: %w", err)
		}
		if key == "" {
			// An unset CI secret arrives empty: the build goes on as without
			// a key, and says what that costs.
			fmt.Println("--build-key is empty: Next.js draws its keys at random, so rebuilds of Next.js services will differ")
			m.BuildKey = nil
		} else {
			mac := hmac.New(sha256.New, []byte(key))
			mac.Write([]byte("bot-core build key id"))
			m.buildKeyID = hex.EncodeToString(mac.Sum(nil))[:16]
		}
	}
	m.LockDigest, m.pinned = sum, true
	return nil
}

// LockImages resolves every base and tool image to the digest its tag names
// now and returns the lockfile that pins them, e.g.
// `dagger call lock-images export --path images.lock`. The tags are the
// current lockfile's (or a flag's, or the official ones); resolving goes
// through the engine, so a registry mirror it is configured with answers.
// It prints each image whose digest changed.
func (m *BotCore) LockImages(ctx context.Context) (*dagger.File, error) {
	old, _, err := m.readLock(ctx)
	if err != nil {
		return nil, err
	}
	if old == nil {
		old = imagelock.Lock{}
	}
	next := imagelock.Lock{}
	fields := m.imageFields()
	var g errgroup.Group
	resolved := make([]string, len(imagelock.Roles))
	for i, role := range imagelock.Roles {
		tag := old.Tag(role)
		if f := fields[role]; *f.ref != "" {
			tag, _, _ = strings.Cut(*f.ref, "@")
		}
		g.Go(func() error {
			ref, err := dag.Container().From(tag).ImageRef(ctx)
			if err != nil {
				return fmt.Errorf("%s: resolve %s: %w", role, tag, err)
			}
			_, digest, ok := strings.Cut(ref, "@")
			if !ok {
				return fmt.Errorf("%s: %s resolved to %q, which has no digest", role, tag, ref)
			}
			resolved[i] = imagelock.Pin(tag, digest)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, role := range imagelock.Roles {
		next[role] = resolved[i]
		switch was := old[role]; {
		case was == next[role]:
			fmt.Printf("%s: %s (unchanged)\n", role, next[role])
		case was == "":
			fmt.Printf("%s: %s (new)\n", role, next[role])
		default:
			fmt.Printf("%s: %s (was %s)\n", role, next[role], was)
		}
	}
	return dag.File(imagelock.File, string(next.Format())), nil
}
