package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/bot-core/delivery/pipelines/digests"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// TagRef is a tag and the digest it points to.
type TagRef struct {
	Tag    string `json:"tag"`
	Digest string `json:"digest"`
}

// Deletion is one release manifest to delete by digest, with every tag on it
// (all of which go with it) and what belongs to it alone.
type Deletion struct {
	Digest string   `json:"digest"`
	Tags   []string `json:"tags"`
	// Platforms are the manifests of an index that nothing kept needs; they
	// are deleted after the index, so no registry sees them referenced.
	Platforms []string `json:"platforms,omitempty"`
	// Attachments are the cosign tags (.sig, .att, .sbom) of Digest and of
	// its Platforms: cosign sign --recursive signs every platform manifest
	// too. They are deleted first, so an interrupted cleanup leaves a
	// release that the next run still finds, never unreachable signatures.
	Attachments []TagRef `json:"attachments,omitempty"`
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

// DeletedTags counts the tags that go with the planned deletions, cosign
// attachment tags included.
func (p CleanupPlan) DeletedTags() int {
	tags := map[string]bool{}
	for _, d := range p.Delete {
		for _, t := range d.Tags {
			tags[t] = true
		}
		for _, a := range d.Attachments {
			tags[a.Tag] = true
		}
	}
	return len(tags)
}

// DeletedManifests counts every manifest the planned deletions remove:
// release manifests, their platform manifests and their attachments (a
// platform manifest two deleted indexes share counts once).
func (p CleanupPlan) DeletedManifests() int {
	digests := map[string]bool{}
	for _, d := range p.Delete {
		digests[d.Digest] = true
		for _, pl := range d.Platforms {
			digests[pl] = true
		}
		for _, a := range d.Attachments {
			digests[a.Digest] = true
		}
	}
	return len(digests)
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

// Protected are digests that cleanup keeps whatever the keep rule says,
// each with the reasons (e.g. "deployed v1.2.3 (state file X)"). The
// digests come from outside the registry (deploy state files, release
// manifests, the operator), which this package does not read: it stays
// free of the CLI's packages.
type Protected map[string][]string

// Add protects digest for reason; a digest that is not sha256:<64 hex> is
// an error, so a typo never silently protects nothing.
func (p Protected) Add(digest, reason string) error {
	if _, err := v1.NewHash(digest); err != nil {
		return fmt.Errorf("%q is not an image digest (sha256:<64 hex digits>)", digest)
	}
	if !slices.Contains(p[digest], reason) {
		p[digest] = append(p[digest], reason)
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
//   - A protected digest is never deleted, on top of the keep newest; nor
//     is an index one of whose platform manifests is protected.
//   - A digest that any kept tag points to is kept, whatever other tags it
//     carries, and so is every manifest a kept or protected index references
//     (children is asked for the child digests of each digest; it may be
//     nil, and returns nil for a digest the repository does not hold).
//   - Deletion is by digest, which removes every tag on that digest. The
//     platform manifests of a deleted index go with it unless something
//     kept references them, and so do the cosign .sig/.att/.sbom tags of
//     all of them; those of kept digests are kept.
func PlanCleanup(refs []TagRef, keep int, protected Protected, children func(digest string) ([]string, error)) (CleanupPlan, error) {
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

	// Kept digests and why.
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
	for _, d := range slices.Sorted(maps.Keys(protected)) {
		for _, why := range protected[d] {
			protect(d, why)
		}
	}

	// The manifests of every tagged or protected index.
	kids := map[string][]string{}
	if children != nil {
		var manifests []string
		for d, tags := range tagsOf {
			if slices.ContainsFunc(tags, func(t string) bool { c, _ := Classify(t); return c != ClassCosign }) {
				manifests = append(manifests, d)
			}
		}
		sort.Strings(manifests)
		for _, d := range manifests {
			k, err := children(d)
			if err != nil {
				return CleanupPlan{}, err
			}
			kids[d] = k
		}
		// An untagged protected index may share platform manifests with a
		// release about to go; a protected platform manifest of a tagged
		// index is known already, and most others live in other
		// repositories, so only the rest are asked for.
		known := map[string]bool{}
		for _, k := range kids {
			for _, c := range k {
				known[c] = true
			}
		}
		for _, d := range slices.Sorted(maps.Keys(protected)) {
			if tagsOf[d] != nil || known[d] {
				continue
			}
			k, err := children(d)
			if err != nil {
				return CleanupPlan{}, err
			}
			kids[d] = k
		}
	}
	// An index holding a protected platform manifest is the release that
	// runs: keep it whole.
	for _, d := range slices.Sorted(maps.Keys(kids)) {
		for _, k := range kids[d] {
			for _, why := range protected[k] {
				if !slices.Contains(protected[d], why) { // a release.json names both
					protect(d, "its platform manifest "+digests.Short(k)+" is "+why)
				}
			}
		}
	}
	for _, d := range slices.Sorted(maps.Keys(kids)) {
		if reasons[d] == nil {
			continue
		}
		for _, k := range kids[d] {
			protect(k, "referenced by kept index "+d)
		}
	}

	deleted := map[string]bool{}
	for _, r := range refs {
		class, _ := Classify(r.Tag)
		if (class == ClassRelease || class == ClassPrerelease) && reasons[r.Digest] == nil {
			deleted[r.Digest] = true
		}
	}
	attachments := map[string][]TagRef{} // subject -> its cosign tags
	attached := map[string]bool{}        // cosign tag -> goes with a deletion
	for _, r := range cosign {
		subject, _ := CosignSubject(r.Tag)
		attachments[subject] = append(attachments[subject], r)
	}
	for d := range deleted {
		del := Deletion{Digest: d, Tags: slices.Clone(tagsOf[d])}
		sortTags(del.Tags)
		for _, k := range kids[d] {
			if reasons[k] == nil && !deleted[k] && !slices.Contains(del.Platforms, k) {
				del.Platforms = append(del.Platforms, k)
			}
		}
		for _, subject := range append([]string{d}, del.Platforms...) {
			for _, a := range attachments[subject] {
				if reasons[a.Digest] == nil {
					del.Attachments = append(del.Attachments, a)
					attached[a.Tag] = true
				}
			}
		}
		slices.SortFunc(del.Attachments, func(a, b TagRef) int { return strings.Compare(a.Tag, b.Tag) })
		plan.Delete = append(plan.Delete, del)
	}
	for _, r := range cosign {
		if !attached[r.Tag] {
			protect(r.Digest, "cosign artifact of a kept or unknown digest")
		}
	}
	for d, why := range reasons {
		if len(tagsOf[d]) == 0 {
			continue // an index child or a protected digest without tags: not worth listing
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

// PlanRepositoryCleanup plans the cleanup of repo from its live tags (see
// PlanCleanup) without deleting anything.
func PlanRepositoryCleanup(ctx context.Context, repo name.Repository, keep int, protected Protected, progress Progress, opts ...remote.Option) (CleanupPlan, error) {
	// Checked before listing, so that a bad keep costs no registry request.
	if err := checkKeep(keep); err != nil {
		return CleanupPlan{}, err
	}
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	progress.printf("listing tags of %s", repo)
	refs, err := resolveTags(repo, opts)
	if err != nil {
		return CleanupPlan{}, err
	}
	children := func(digest string) ([]string, error) {
		desc, err := remote.Get(repo.Digest(digest), opts...)
		if IsNotFound(err) {
			return nil, nil // a protected digest of another repository
		}
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
	return PlanCleanup(refs, keep, protected, children)
}

// resolveTags lists repo's tags with the digest each points to now.
func resolveTags(repo name.Repository, opts []remote.Option) ([]TagRef, error) {
	list, err := remote.List(repo, opts...)
	if err != nil {
		return nil, err
	}
	refs := make([]TagRef, 0, len(list))
	for _, tag := range list {
		desc, err := remote.Head(repo.Tag(tag), opts...)
		if IsNotFound(err) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		refs = append(refs, TagRef{Tag: tag, Digest: desc.Digest.String()})
	}
	return refs, nil
}

// IsNotFound reports whether a registry said the manifest, tag or
// repository does not exist: HTTP 404, or the distribution error codes
// some registries send with another status.
func IsNotFound(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	if terr.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range terr.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}

// Applied is what ApplyCleanup did with one planned deletion.
type Applied struct {
	Digest string `json:"digest"`
	// Deleted is true once the digest, its platform manifests and its
	// attachments are gone.
	Deleted bool `json:"deleted"`
	// LeftAlone says why the deletion was not made: the registry changed
	// since the plan, so the plan no longer describes what would go.
	LeftAlone string `json:"left_alone,omitempty"`
}

// ApplyCleanup makes plan's deletions in repo, each only if the registry
// still looks as it did when the plan was made: first all tags are read
// again, then each deletion's own tags once more right before it is made. A
// deletion is left alone (and reported so) when one of its tags moved to
// another digest or disappeared, or another tag now points to one of its
// manifests. It returns one Applied per planned deletion it reached; on
// error, those made so far.
func ApplyCleanup(ctx context.Context, repo name.Repository, plan CleanupPlan, progress Progress, opts ...remote.Option) ([]Applied, error) {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	out := []Applied{}
	if len(plan.Delete) == 0 {
		return out, nil
	}
	planned := map[string]string{} // tag -> digest, as the plan saw it
	for _, k := range plan.Kept {
		for _, t := range k.Tags {
			planned[t] = k.Digest
		}
	}
	for _, d := range plan.Delete {
		for _, t := range d.Tags {
			planned[t] = d.Digest
		}
		for _, a := range d.Attachments {
			planned[a.Tag] = a.Digest
		}
	}
	progress.printf("reading the tags of %s again before deleting", repo)
	now, err := resolveTags(repo, opts)
	if err != nil {
		return out, err
	}
	current := map[string]string{}
	for _, r := range now {
		current[r.Tag] = r.Digest
	}
	// A platform manifest shared by several deleted indexes goes only once
	// all of them went, so that no index left alone loses a platform.
	parents := map[string]int{}
	for _, d := range plan.Delete {
		for _, p := range d.Platforms {
			parents[p]++
		}
	}

	for _, d := range plan.Delete {
		own := map[string]string{}
		for _, t := range d.Tags {
			own[t] = d.Digest
		}
		for _, a := range d.Attachments {
			own[a.Tag] = a.Digest
		}
		if why := changedSince(own, planned, current, d); why != "" {
			out = append(out, Applied{Digest: d.Digest, LeftAlone: why})
			progress.printf("leaving %s@%s alone: %s", repo, d.Digest, why)
			continue
		}
		// Once more right before deleting: the listing above took a while.
		for _, t := range slices.Sorted(maps.Keys(own)) {
			desc, err := remote.Head(repo.Tag(t), opts...)
			switch {
			case IsNotFound(err):
				current[t] = ""
			case err != nil:
				return out, err
			default:
				current[t] = desc.Digest.String()
			}
		}
		if why := changedSince(own, planned, current, d); why != "" {
			out = append(out, Applied{Digest: d.Digest, LeftAlone: why})
			progress.printf("leaving %s@%s alone: %s", repo, d.Digest, why)
			continue
		}
		progress.printf("deleting %s@%s (%v)", repo, d.Digest, d.Tags)
		deleteAttachments := func(subject string) error {
			for _, a := range d.Attachments {
				if s, _ := CosignSubject(a.Tag); s == subject {
					if err := deleteManifest(repo, a.Digest, opts); err != nil {
						return err
					}
				}
			}
			return nil
		}
		if err := deleteAttachments(d.Digest); err != nil {
			return out, err
		}
		if err := remote.Delete(repo.Digest(d.Digest), opts...); err != nil {
			return out, err
		}
		for _, p := range d.Platforms {
			if parents[p]--; parents[p] > 0 {
				continue
			}
			if err := deleteAttachments(p); err != nil {
				return out, err
			}
			if err := deleteManifest(repo, p, opts); err != nil {
				return out, err
			}
		}
		out = append(out, Applied{Digest: d.Digest, Deleted: true})
	}
	return out, nil
}

// changedSince says, in one clause, how the registry's tags (current)
// differ from the plan for deletion d (own: its tags and attachment tags),
// or "" when they do not.
func changedSince(own, planned, current map[string]string, d Deletion) string {
	for _, t := range slices.Sorted(maps.Keys(own)) {
		switch now, ok := current[t]; {
		case !ok || now == "":
			return "tag " + t + " is gone since the plan"
		case now != own[t]:
			return "tag " + t + " moved since the plan"
		}
	}
	doomed := map[string]bool{d.Digest: true}
	for _, p := range d.Platforms {
		doomed[p] = true
	}
	for _, a := range d.Attachments {
		doomed[a.Digest] = true
	}
	for _, t := range slices.Sorted(maps.Keys(current)) {
		if _, mine := own[t]; mine || !doomed[current[t]] {
			continue
		}
		if planned[t] != current[t] {
			return "tag " + t + " points to it since the plan"
		}
	}
	return ""
}

// deleteManifest deletes repo@digest; one already gone is fine, as the
// point is that it is gone.
func deleteManifest(repo name.Repository, digest string, opts []remote.Option) error {
	if err := remote.Delete(repo.Digest(digest), opts...); err != nil && !IsNotFound(err) {
		return err
	}
	return nil
}

// Cleanup plans the cleanup of repo (PlanRepositoryCleanup) and, with
// apply, makes it (ApplyCleanup). It returns the plan and what was applied,
// which on error is how far it got.
func Cleanup(ctx context.Context, repo name.Repository, keep int, protected Protected, apply bool, progress Progress, opts ...remote.Option) (CleanupPlan, []Applied, error) {
	plan, err := PlanRepositoryCleanup(ctx, repo, keep, protected, progress, opts...)
	if err != nil || !apply {
		return plan, []Applied{}, err
	}
	applied, err := ApplyCleanup(ctx, repo, plan, progress, opts...)
	return plan, applied, err
}
