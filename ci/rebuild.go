package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/digests"
	"github.com/bot-core/delivery/pipelines/plan"
	"github.com/bot-core/delivery/pipelines/release"
	"github.com/bot-core/delivery/pipelines/reproducible"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// RebuildCheck rebuilds a release from this source, as build-all's export
// of it (release.json and images/) describes it, and reports per service
// and platform whether the rebuild is identical or which layers differ,
// e.g. `git checkout v1.2.3 && dagger call rebuild-check --release dist`.
// The version, commit, source date and source URL come from release.json;
// the source must be at the release's commit (when it is a git checkout)
// with the release's images.lock. It fails when any image differs.
func (m *BotCore) RebuildCheck(
	ctx context.Context,
	// The directory build-all exported: release.json and images/<service>.
	release *dagger.Directory,
	// Build secrets, as for build-all.
	// +optional
	buildSecrets []*dagger.Secret,
	// pip's index, as for build-all.
	// +optional
	pipIndexUrl string,
	// pip's extra indexes, as for build-all.
	// +optional
	pipExtraIndexUrl []string,
	// pip's find-links pages, as for build-all.
	// +optional
	pipFindLinks []string,
	// user:password for the pip indexes' hosts, as for build-all.
	// +optional
	pipCredentials *dagger.Secret,
	// The npm registry, as for build-all.
	// +optional
	npmRegistry string,
	// The npm registry's token, as for build-all.
	// +optional
	npmToken *dagger.Secret,
	// The cargo registry mirroring crates.io, as for build-all.
	// +optional
	cargoRegistry string,
	// The cargo registry's token, as for build-all.
	// +optional
	cargoToken *dagger.Secret,
) (_ string, rerr error) {
	defer func() { rerr = wholeError(rerr) }()
	if err := m.pin(ctx); err != nil {
		return "", err
	}
	rel, err := readReleaseRecord(ctx, release)
	if err != nil {
		return "", err
	}
	if err := m.sameInputs(ctx, rel); err != nil {
		return "", err
	}
	var names []string
	for _, s := range rel.Services {
		if s.Layout == "" {
			return "", fmt.Errorf("release.json records no image layout for %s: rebuild-check compares with the layouts build-all exports (build-all ... export --path dist), not with a registry", s.Name)
		}
		names = append(names, s.Name)
	}
	req := plan.Request{Services: names, Platforms: strings.Join(rel.Platforms, ","), Version: rel.Version,
		GitSHA: rel.Revision, SourceURL: rel.SourceURL, Epoch: int(rel.Created.Unix()), Severity: "HIGH,CRITICAL"}
	if req.Version == "" {
		// A branch build: its tags are not part of the images, but a plan
		// needs something to tag.
		req.GitRef = "refs/heads/rebuild-check"
	}
	r, err := m.newRun(ctx, req)
	if err != nil {
		return "", err
	}
	secrets, err := matchBuildSecrets(ctx, r.plan.Services, buildSecrets)
	if err != nil {
		return "", err
	}
	indexes, err := packageIndexes(indexFlags{pipIndexUrl, pipExtraIndexUrl, pipFindLinks, pipCredentials, npmRegistry, npmToken, cargoRegistry, cargoToken})
	if err != nil {
		return "", err
	}
	if err := (buildStage{m: m, secrets: secrets, indexes: indexes}).Run(ctx, r); err != nil {
		return "", err
	}

	var report strings.Builder
	fmt.Fprintf(&report, "rebuild of %s (commit %s, source date %s)\n", rel.Title(), shortSHA(rel.Revision), rel.Created.UTC().Format("2006-01-02T15:04:05Z"))
	differ, total := 0, 0
	for i, a := range r.arts {
		s := rel.Services[i]
		_, want, err := layoutImages(ctx, release.Directory(s.Layout))
		if err != nil {
			return "", fmt.Errorf("%s in --release: %w", s.Layout, err)
		}
		_, got, err := layoutImages(ctx, a.layout.Dir)
		if err != nil {
			return "", err
		}
		for _, p := range rel.Platforms {
			total++
			w, g := s.Platforms[p], a.layout.Platforms[p]
			if w == g {
				fmt.Fprintf(&report, "%s %s: identical (%s)\n", s.Name, p, digests.Short(w))
				continue
			}
			differ++
			fmt.Fprintf(&report, "%s %s: differs (%s in the release, %s rebuilt)\n", s.Name, p, digests.Short(w), digests.Short(g))
			for _, line := range reproducible.Diff(want[p], got[p]) {
				fmt.Fprintf(&report, "  %s\n", line)
			}
		}
	}
	if differ > 0 {
		return "", fmt.Errorf("the rebuild differs for %d of %d images:\n%s", differ, total, report.String())
	}
	fmt.Fprintf(&report, "identical: all %d images\n", total)
	return report.String(), nil
}

// readReleaseRecord is the release.json of a build-all export.
func readReleaseRecord(ctx context.Context, dir *dagger.Directory) (release.Manifest, error) {
	f, err := fileIn(ctx, dir, "release.json")
	if err != nil {
		return release.Manifest{}, err
	}
	if f == nil {
		return release.Manifest{}, errors.New("--release has no release.json: give the directory build-all exported (build-all ... export --path dist)")
	}
	data, err := f.Contents(ctx)
	if err != nil {
		return release.Manifest{}, err
	}
	return release.Parse([]byte(data))
}

// sameInputs refuses a rebuild that cannot be the release's: another commit
// or other pinned images.
func (m *BotCore) sameInputs(ctx context.Context, rel release.Manifest) error {
	switch {
	case rel.ImagesLock == m.LockDigest:
	case rel.ImagesLock == "":
		fmt.Printf("the release named its base images by tag; this rebuild uses images.lock (sha256:%s)\n", m.LockDigest)
	case m.LockDigest == "":
		return fmt.Errorf("the release was built with an images.lock (sha256:%s) and this source has none: check out the release's commit", rel.ImagesLock)
	default:
		return fmt.Errorf("images.lock is not the release's (sha256:%s here, sha256:%s in release.json): check out the release's commit", m.LockDigest, rel.ImagesLock)
	}
	head, err := m.head(ctx)
	if err != nil {
		return err
	}
	switch {
	case head.commit == "":
		fmt.Printf("the source is no git checkout: it is taken to be commit %s, as release.json says\n", shortSHA(rel.Revision))
	case rel.Revision != "" && !strings.EqualFold(head.commit, rel.Revision):
		return fmt.Errorf("the source is at commit %s, the release was built from %s: check it out (git checkout %s) and run again", shortSHA(head.commit), shortSHA(rel.Revision), rel.Revision)
	}
	return nil
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	if s == "" {
		return "(none)"
	}
	return s
}

// layoutImages reads an OCI layout's index digest and each platform's
// manifest and config.
func layoutImages(ctx context.Context, dir *dagger.Directory) (string, map[string]reproducible.Image, error) {
	l := &layoutReader{dir: dir}
	var root v1.IndexManifest
	if _, err := l.readJSON(ctx, "index.json", &root); err != nil {
		return "", nil, err
	}
	if len(root.Manifests) != 1 {
		return "", nil, fmt.Errorf("OCI layout: want one entry in index.json, found %d", len(root.Manifests))
	}
	var idx v1.IndexManifest
	if _, err := l.readJSON(ctx, blobPath(root.Manifests[0].Digest), &idx); err != nil {
		return "", nil, err
	}
	imgs := map[string]reproducible.Image{}
	for _, d := range idx.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue
		}
		var img reproducible.Image
		if _, err := l.readJSON(ctx, blobPath(d.Digest), &img.Manifest); err != nil {
			return "", nil, err
		}
		raw, err := l.readJSON(ctx, blobPath(img.Manifest.Config.Digest), &img.Config)
		if err != nil {
			return "", nil, err
		}
		img.RawConfig = raw
		imgs[d.Platform.String()] = img
	}
	return root.Manifests[0].Digest.String(), imgs, nil
}
