// Package tags computes container image tags for the bot-core release
// pipeline, following the conventions GitHub users know from
// docker/metadata-action: semver releases fan out into moving tags
// (1.2.3, 1.2, 1, latest), branches become sanitized tags plus commit tags,
// pull requests become pr-N.
//
// It is imported by the Dagger module, where every dependency is resolved
// inside the engine, so it depends only on the standard library and
// golang.org/x/mod/semver and does no I/O: every input comes from Source,
// and the same input always yields the same output.
package tags

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"
)

// MaxTagLen is the longest tag a registry accepts (Docker's tag grammar allows
// at most 128 characters); every tag Compute returns fits within it.
const MaxTagLen = 128

// shortSHALen is how many leading hex digits of the commit go into the
// sha-<sha7> and <branch>-<sha7> tags, as in docker/metadata-action.
const shortSHALen = 7

// maxSHALen accepts SHA-256 object names (64 hex digits) as well as SHA-1 (40).
const maxSHALen = 64

// latestTag is the moving tag that points at the newest stable release.
const latestTag = "latest"

// Source describes what is being released or built, so that Compute can pick
// the tag scheme: an explicit release version, a git ref from CI, and/or a
// pull request number.
type Source struct {
	// Version is the explicit release version, e.g. "v1.2.3", treated exactly
	// as if the tag "refs/tags/v1.2.3" had been pushed. Leave it empty when
	// not releasing. When set it wins over Ref.
	Version string
	// Ref is the git ref being built: "refs/heads/main", "refs/tags/v1.2.3",
	// "refs/pull/12/merge" (or ".../head"), or a bare branch name such as
	// "feature/x". Other "refs/..." namespaces are rejected.
	Ref string
	// SHA is the full (or at least 7-digit) hex commit id. It adds the
	// sha-<sha7> and <branch>-<sha7> tags to branch and non-semver tag builds;
	// it may be empty.
	SHA string
	// PR is the pull request number, 0 when not building a pull request. It
	// takes precedence over Ref.
	PR int
}

// Compute returns the image tags for s, deduplicated, in a fixed order (most
// specific first), each matching Docker's tag grammar
// [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
//
// Precedence: Version, then PR, then Ref.
//
//   - Release (Version, or a Ref "refs/tags/<semver>"): the version exactly as
//     written, the version without its leading "v", then MAJOR.MINOR, MAJOR and
//     "latest". "v1.2.3" gives v1.2.3, 1.2.3, 1.2, 1, latest; "1.2.3" gives
//     1.2.3, 1.2, 1, latest (no "v1.2.3" is invented). A pre-release
//     ("v1.2.3-rc.1") gives only the two full forms: it must never move 1.2, 1
//     or latest. For a 0.x release the bare major tag "0" is not produced,
//     following the "Major version zero" note of docker/metadata-action: 0.x
//     makes no compatibility promise, so "0" would be a moving tag that
//     breaks. (metadata-action itself still renders {{major}} as "0"; its
//     README tells users to disable that entry for v0 tags, which is what this
//     package does for them.) 0.x releases still get MAJOR.MINOR and latest.
//     The SHA is validated but adds no tag to a release.
//   - Pull request (PR > 0, or a Ref "refs/pull/N/..."): only "pr-N".
//   - Branch: the sanitized branch name; with a SHA also "<branch>-<sha7>" and
//     "sha-<sha7>". A name another build's tag could have ("latest",
//     "v1.2.3", "1.2", "pr-7", "sha-0123abc") gets the prefix "branch-".
//   - Git tag that is not a semantic version ("refs/tags/nightly"): the
//     sanitized tag name; with a SHA also "sha-<sha7>". A name another
//     build's tag could have ("latest", "1.2") gets the prefix "tag-".
//
// Branch and tag names are sanitized by lowering upper case, replacing every
// character outside [a-z0-9_.-] with "-" (one "-" per character), and
// stripping leading "." and "-". They are truncated so that each whole tag,
// including a "-<sha7>" suffix, fits MaxTagLen.
//
// Compute returns an error, naming the offending value, when there is nothing
// to tag, when the SHA is not 7 to 64 hex digits, when a version is not usable
// (see ValidateVersion), when a release Version is combined with a pull
// request (a PR build must never move "latest"), or when a ref cannot be
// turned into a tag.
func Compute(s Source) ([]string, error) {
	sha7, err := shortSHA(s.SHA)
	if err != nil {
		return nil, err
	}
	if s.PR < 0 {
		return nil, fmt.Errorf("invalid pull request number %d: expected a positive number, or 0 when not building a pull request", s.PR)
	}

	if s.Version != "" {
		if s.PR > 0 || strings.HasPrefix(s.Ref, "refs/pull/") {
			return nil, fmt.Errorf("release version %q given for a pull request build (PR %d, ref %q): refusing to publish release tags from a pull request", s.Version, s.PR, s.Ref)
		}
		v, err := parseRelease(s.Version)
		if err != nil {
			return nil, err
		}
		return releaseTags(v), nil
	}

	if s.PR > 0 {
		return []string{"pr-" + strconv.Itoa(s.PR)}, nil
	}

	switch ref := s.Ref; {
	case ref == "":
		return nil, errors.New("nothing to tag: set Source.Version for a release, Source.PR for a pull request, or Source.Ref to a branch or tag ref (a SHA alone is not enough)")
	case strings.HasPrefix(ref, "refs/heads/"):
		return branchTags(ref, strings.TrimPrefix(ref, "refs/heads/"), sha7)
	case strings.HasPrefix(ref, "refs/tags/"):
		return gitTagTags(ref, strings.TrimPrefix(ref, "refs/tags/"), sha7)
	case strings.HasPrefix(ref, "refs/pull/"):
		n, err := pullNumber(ref)
		if err != nil {
			return nil, err
		}
		return []string{"pr-" + strconv.Itoa(n)}, nil
	case strings.HasPrefix(ref, "refs/"):
		return nil, fmt.Errorf("unsupported git ref %q: expected refs/heads/<branch>, refs/tags/<tag>, refs/pull/<number>/merge or a bare branch name", ref)
	default:
		return branchTags(ref, ref, sha7)
	}
}

// ValidateVersion reports whether v can be released: a semantic version
// MAJOR.MINOR.PATCH with an optional leading "v" and optional -PRERELEASE
// ("v1.0.0", "1.0.0", "v1.2.3-rc.1"). Shorthands such as "1.0" or "v1",
// words such as "latest", and the empty string are rejected, with an error
// naming the value and the expected form.
//
// Build metadata ("v1.2.3+build.5") is valid semver but is rejected: "+" is
// not allowed in an image tag, and rewriting it to "-" would make
// "1.2.3-build.5" indistinguishable from a pre-release of that name (and give
// a release a pre-release-looking tag), so the tag could silently be
// overwritten by a different version. Versions longer than MaxTagLen are
// rejected too, as they cannot be a tag.
func ValidateVersion(v string) error {
	_, err := parseRelease(v)
	return err
}

// version is a validated release version, split into the texts its tags
// are made of.
type version struct {
	raw        string // exactly as given, possibly with "v"
	full       string // without the leading "v" (metadata-action's {{version}})
	majorMinor string // "1.2"
	major      string // "1"
	prerelease bool
}

const expectedVersionForm = `expected a semantic version MAJOR.MINOR.PATCH with optional leading "v" and optional -PRERELEASE, e.g. "v1.2.3", "1.2.3" or "v1.2.3-rc.1"`

// parseRelease parses and validates a release version (see ValidateVersion).
func parseRelease(s string) (version, error) {
	sv, ok := semverOf(s)
	if !ok {
		return version{}, fmt.Errorf("invalid version %q: %s", s, expectedVersionForm)
	}
	if build := semver.Build(sv); build != "" {
		return version{}, fmt.Errorf("invalid version %q: build metadata (%s) cannot be part of an image tag; release %q instead", s, build, strings.TrimSuffix(s, build))
	}
	if len(s) > MaxTagLen {
		return version{}, fmt.Errorf("invalid version %q: %d characters, but an image tag holds at most %d", s, len(s), MaxTagLen)
	}
	return version{
		raw:        s,
		full:       strings.TrimPrefix(sv, "v"),
		majorMinor: strings.TrimPrefix(semver.MajorMinor(sv), "v"),
		major:      strings.TrimPrefix(semver.Major(sv), "v"),
		prerelease: semver.Prerelease(sv) != "",
	}, nil
}

// semverOf returns s with the leading "v" golang.org/x/mod/semver needs, and
// whether s is a semantic version with all three core numbers (build
// metadata allowed, for parseRelease to reject with a precise message).
// semver also accepts the shorthands "v1" and "v1.2", which are refused:
// "1.2" and "1" are the moving tags a release updates, not releases.
func semverOf(s string) (string, bool) {
	sv := s
	if !strings.HasPrefix(sv, "v") {
		sv = "v" + sv
	}
	// Canonical completes a shorthand ("v1.2" -> "v1.2.0") and drops build
	// metadata, so only a version spelled out in full comes back unchanged
	// apart from its build metadata.
	full := semver.IsValid(sv) && semver.Canonical(sv) == strings.TrimSuffix(sv, semver.Build(sv))
	return sv, full
}

// releaseTags lists the tags of a validated release version.
func releaseTags(v version) []string {
	tags := []string{v.raw, v.full}
	if !v.prerelease {
		tags = append(tags, v.majorMinor)
		if v.major != "0" {
			tags = append(tags, v.major)
		}
		tags = append(tags, latestTag)
	}
	return dedupe(tags)
}

// branchTags lists the tags of a branch build; ref is only used in errors.
func branchTags(ref, branch, sha7 string) ([]string, error) {
	name := sanitize(branch)
	if name == "" {
		return nil, fmt.Errorf("branch %q (from ref %q) has no characters usable in an image tag", branch, ref)
	}
	if reserved(name) {
		name = "branch-" + name
	}
	tags := []string{truncate(name, MaxTagLen)}
	if sha7 != "" {
		suffix := "-" + sha7
		tags = append(tags, truncate(name, MaxTagLen-len(suffix))+suffix, "sha-"+sha7)
	}
	return dedupe(tags), nil
}

// gitTagTags lists the tags of a pushed git tag: release tags when it is a
// semantic version, otherwise the sanitized tag name (plus sha-<sha7>).
func gitTagTags(ref, tag, sha7 string) ([]string, error) {
	if _, ok := semverOf(tag); ok {
		v, err := parseRelease(tag)
		if err != nil {
			return nil, fmt.Errorf("git ref %q: %w", ref, err)
		}
		return releaseTags(v), nil
	}
	name := sanitize(tag)
	if name == "" {
		return nil, fmt.Errorf("git tag %q (from ref %q) has no characters usable in an image tag", tag, ref)
	}
	if reserved(name) {
		name = "tag-" + name
	}
	tags := []string{truncate(name, MaxTagLen)}
	if sha7 != "" {
		tags = append(tags, "sha-"+sha7)
	}
	return dedupe(tags), nil
}

// pullNumber extracts N from "refs/pull/N/merge" or "refs/pull/N/head".
func pullNumber(ref string) (int, error) {
	parts := strings.Split(strings.TrimPrefix(ref, "refs/pull/"), "/")
	if len(parts) == 2 && (parts[1] == "merge" || parts[1] == "head") {
		// Comparing with the formatted number refuses what Atoi forgives
		// ("+12", "012"), so each pull request has exactly one ref form.
		if n, err := strconv.Atoi(parts[0]); err == nil && n > 0 && strconv.Itoa(n) == parts[0] {
			return n, nil
		}
	}
	return 0, fmt.Errorf("invalid pull request ref %q: expected refs/pull/<number>/merge or refs/pull/<number>/head", ref)
}

// shortSHA validates sha and returns its first 7 hex digits in lower case, or
// "" when sha is empty.
func shortSHA(sha string) (string, error) {
	if sha == "" {
		return "", nil
	}
	ok := len(sha) >= shortSHALen && len(sha) <= maxSHALen
	for i := 0; ok && i < len(sha); i++ {
		c := sha[i]
		ok = c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
	}
	if !ok {
		return "", fmt.Errorf("invalid commit SHA %q: expected %d to %d hexadecimal characters", sha, shortSHALen, maxSHALen)
	}
	return strings.ToLower(sha[:shortSHALen]), nil
}

// sanitize turns a branch or git tag name into tag text: upper case is
// lowered, every character (rune) outside [a-z0-9_.-] becomes "-", and
// leading "." and "-" (not allowed to start a tag) are removed. The result
// may be empty.
func sanitize(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + ('a' - 'A'))
		default:
			b.WriteByte('-')
		}
	}
	return strings.TrimLeft(b.String(), ".-")
}

// releaseShaped matches what a release or another build kind tags: versions
// and their moving forms (v1, 1.2, 1.2.3-rc.1), pr-N and sha-<hex>.
var releaseShaped = regexp.MustCompile(`^(v?[0-9]+(\.[0-9]+)*(-.*)?|pr-[0-9]+|sha-[0-9a-f]+)$`)

// reserved reports whether a sanitized branch or git tag name would be
// taken for a release's tag ("latest", "v1.2.3", "1.2") or another build's
// ("pr-7", "sha-0123abc"): a branch named latest must not move latest.
func reserved(name string) bool {
	return name == latestTag || releaseShaped.MatchString(name)
}

// truncate cuts an ASCII string to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// dedupe removes repeated tags, keeping the first occurrence of each.
func dedupe(tags []string) []string {
	out := tags[:0]
	seen := make(map[string]bool, len(tags))
	for _, t := range tags {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}
