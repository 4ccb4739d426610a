package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TagRef is a tag and the digest it points to.
type TagRef struct {
	Tag    string `json:"tag"`
	Digest string `json:"digest"`
}

// Deletion is one manifest to delete by digest, with every tag on it (all
// of which go with it).
type Deletion struct {
	Digest string   `json:"digest"`
	Tags   []string `json:"tags"`
}

// Kept is a digest the plan keeps, with the reasons.
type Kept struct {
	Digest  string   `json:"digest"`
	Tags    []string `json:"tags"`
	Reasons []string `json:"reasons"`
}

// CleanupPlan is what Cleanup deletes and keeps in one repository.
type CleanupPlan struct {
	Keep int `json:"keep"`
	// KeptReleases are the versions kept by the keep-N rule (releases and
	// newer pre-releases), newest first.
	KeptReleases []string   `json:"kept_releases"`
	Kept         []Kept     `json:"kept"`
	Delete       []Deletion `json:"delete"`
}

// DeletedTags counts the tags that go with the planned deletions.
func (p CleanupPlan) DeletedTags() int {
	n := 0
	for _, d := range p.Delete {
		n += len(d.Tags)
	}
	return n
}

// ErrKeepTooLow is the error (wrapped) of PlanCleanup and Cleanup when asked
// to keep fewer than one release, which would delete every release; a caller
// that takes keep from its user can tell this case apart and name its own
// setting.
var ErrKeepTooLow = errors.New("cleanup must keep at least 1 release so that it never deletes every release")

func checkKeep(keep int) error {
	if keep < 1 {
		return fmt.Errorf("cannot clean up keeping %d releases: %w; keep 1 or more", keep, ErrKeepTooLow)
	}
	return nil
}

// PlanCleanup decides, without touching the registry, which digests of a
// repository to delete so that the newest keep releases remain. The rules:
//
//   - Releases are full semantic versions without pre-release, "v1.2.3" and
//     "1.2.3" being the same release; the keep newest releases are kept.
//   - Pre-releases do not count toward keep. A pre-release newer than the
//     oldest kept release is kept (it belongs to current or upcoming work);
//     older ones are deleted. With no release at all, the keep newest
//     pre-releases are kept instead.
//   - Every other tag (latest, main, 1.2, 1, sha-*, pr-*, ...) is never
//     deleted, and neither is anything it points to.
//   - A digest that any kept tag points to is kept, whatever other tags it
//     carries, and so is every manifest a kept index references (children
//     is asked for the child digests of each kept digest; it may be nil).
//   - Deletion is by digest, which removes every tag on that digest. The
//     cosign .sig/.att/.sbom tags of a deleted digest are deleted with it;
//     those of kept digests are kept.
func PlanCleanup(refs []TagRef, keep int, children func(digest string) ([]string, error)) (CleanupPlan, error) {
	if err := checkKeep(keep); err != nil {
		return CleanupPlan{}, err
	}
	plan := CleanupPlan{Keep: keep, KeptReleases: []string{}, Kept: []Kept{}, Delete: []Deletion{}}

	tagsOf := map[string][]string{}
	var releases, prereleases []string
	seen := map[string]bool{}
	for _, r := range refs {
		tagsOf[r.Digest] = append(tagsOf[r.Digest], r.Tag)
		class, v := Classify(r.Tag)
		if (class == ClassRelease || class == ClassPrerelease) && !seen[v] {
			seen[v] = true
			if class == ClassRelease {
				releases = append(releases, v)
			} else {
				prereleases = append(prereleases, v)
			}
		}
	}
	newestFirst := func(a, b string) int { return compareVersions(b, a) }
	slices.SortFunc(releases, newestFirst)
	slices.SortFunc(prereleases, newestFirst)

	keptVersion := map[string]bool{}
	for _, v := range releases[:min(keep, len(releases))] {
		keptVersion[v] = true
		plan.KeptReleases = append(plan.KeptReleases, v)
	}
	if len(releases) > 0 {
		oldest := releases[min(keep, len(releases))-1]
		for _, v := range prereleases {
			if compareVersions(v, oldest) > 0 {
				keptVersion[v] = true
			}
		}
	} else {
		for _, v := range prereleases[:min(keep, len(prereleases))] {
			keptVersion[v] = true
		}
	}
	for v := range keptVersion {
		if !slices.Contains(plan.KeptReleases, v) {
			plan.KeptReleases = append(plan.KeptReleases, v)
		}
	}
	slices.SortFunc(plan.KeptReleases, newestFirst)

	// Protected digests and why.
	reasons := map[string][]string{}
	protect := func(digest, why string) {
		if !slices.Contains(reasons[digest], why) {
			reasons[digest] = append(reasons[digest], why)
		}
	}
	var cosign []TagRef
	for _, r := range refs { // versions first, so they are the first reason
		switch class, v := Classify(r.Tag); {
		case class == ClassRelease && keptVersion[v]:
			protect(r.Digest, "release "+r.Tag+" is among the newest "+strconv.Itoa(keep))
		case class == ClassPrerelease && keptVersion[v]:
			protect(r.Digest, "pre-release "+r.Tag+" is newer than the oldest kept release")
		}
	}
	for _, r := range refs {
		switch class, _ := Classify(r.Tag); class {
		case ClassOther:
			protect(r.Digest, "tag "+r.Tag+" is never cleaned up")
		case ClassCosign:
			cosign = append(cosign, r)
		}
	}
	if children != nil {
		roots := make([]string, 0, len(reasons))
		for d := range reasons {
			roots = append(roots, d)
		}
		sort.Strings(roots)
		for _, d := range roots {
			kids, err := children(d)
			if err != nil {
				return CleanupPlan{}, err
			}
			for _, k := range kids {
				protect(k, "referenced by kept index "+d)
			}
		}
	}

	deleted := map[string]bool{}
	for _, r := range refs {
		class, _ := Classify(r.Tag)
		if (class == ClassRelease || class == ClassPrerelease) && reasons[r.Digest] == nil {
			deleted[r.Digest] = true
		}
	}
	// Cosign artifacts follow their subject.
	for _, r := range cosign {
		subject, _ := CosignSubject(r.Tag)
		if deleted[subject] && reasons[r.Digest] == nil {
			deleted[r.Digest] = true
		} else {
			protect(r.Digest, "cosign artifact of a kept or unknown digest")
		}
	}
	for d := range deleted {
		if reasons[d] != nil { // protected by a cosign tag above
			continue
		}
		t := slices.Clone(tagsOf[d])
		sortTags(t)
		plan.Delete = append(plan.Delete, Deletion{Digest: d, Tags: t})
	}
	for d, why := range reasons {
		if len(tagsOf[d]) == 0 {
			continue // an index child without tags: not worth listing
		}
		t := slices.Clone(tagsOf[d])
		sortTags(t)
		plan.Kept = append(plan.Kept, Kept{Digest: d, Tags: t, Reasons: why})
	}
	byFirstTag := func(ta, tb []string, da, db string) int {
		_, va := Classify(ta[0])
		_, vb := Classify(tb[0])
		if c := compareTags(ta[0], va, tb[0], vb); c != 0 {
			return c
		}
		return strings.Compare(da, db)
	}
	slices.SortFunc(plan.Delete, func(a, b Deletion) int { return byFirstTag(a.Tags, b.Tags, a.Digest, b.Digest) })
	slices.SortFunc(plan.Kept, func(a, b Kept) int { return byFirstTag(a.Tags, b.Tags, a.Digest, b.Digest) })
	return plan, nil
}

// sortTags orders tags like SemverFirst does.
func sortTags(list []string) {
	slices.SortFunc(list, func(a, b string) int {
		_, va := Classify(a)
		_, vb := Classify(b)
		return compareTags(a, va, b, vb)
	})
}

// Cleanup plans the cleanup of repo from its live tags (see PlanCleanup);
// with apply it then deletes each planned digest with remote.Delete on
// repo@digest. It returns the plan and how many digests were deleted, which
// on error is how far it got.
func Cleanup(ctx context.Context, repo name.Repository, keep int, apply bool, progress Progress, opts ...remote.Option) (CleanupPlan, int, error) {
	// Checked before listing, so that a bad keep costs no registry request.
	if err := checkKeep(keep); err != nil {
		return CleanupPlan{}, 0, err
	}
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	progress.printf("listing tags of %s", repo)
	list, err := remote.List(repo, opts...)
	if err != nil {
		return CleanupPlan{}, 0, err
	}
	progress.printf("resolving %d tags of %s", len(list), repo)
	refs := make([]TagRef, 0, len(list))
	for _, tag := range list {
		desc, err := remote.Head(repo.Tag(tag), opts...)
		if err != nil {
			return CleanupPlan{}, 0, err
		}
		refs = append(refs, TagRef{Tag: tag, Digest: desc.Digest.String()})
	}
	children := func(digest string) ([]string, error) {
		desc, err := remote.Get(repo.Digest(digest), opts...)
		if err != nil {
			return nil, err
		}
		if !desc.MediaType.IsIndex() {
			return nil, nil
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("cannot parse the index %s@%s: %w", repo, digest, err)
		}
		var out []string
		for _, d := range im.Manifests {
			out = append(out, d.Digest.String())
		}
		return out, nil
	}
	plan, err := PlanCleanup(refs, keep, children)
	if err != nil || !apply {
		return plan, 0, err
	}
	done := 0
	for _, d := range plan.Delete {
		progress.printf("deleting %s@%s (%v)", repo, d.Digest, d.Tags)
		if err := remote.Delete(repo.Digest(d.Digest), opts...); err != nil {
			return plan, done, err
		}
		done++
	}
	return plan, done, nil
}
