package tags

import (
	"fmt"
	"strings"

	"golang.org/x/mod/semver"
)

// Held is a moving tag a release leaves where it is, and why.
type Held struct {
	Tag    string `json:"tag"`
	Reason string `json:"reason"`
}

// Fit keeps a release's moving tags from going backwards. Given the tags
// of a release (as Compute returns them) and the tags a repository already
// holds, latest, MAJOR and MAJOR.MINOR move only when the release is the
// newest stable version of their range; a hotfix 1.1.5 published after 1.2.0
// keeps latest and 1 on 1.2.0 and moves 1.1. Branch, pull request and
// pre-release tags are returned unchanged.
func Fit(release, existing []string) (move []string, held []Held) {
	v, ok := releaseVersion(release)
	if !ok {
		return release, nil
	}
	var newer []string // stable versions in the repository newer than v
	for _, t := range existing {
		if sv, ok := semverOf(t); ok && semver.Prerelease(sv) == "" && semver.Build(sv) == "" && semver.Compare(sv, v) > 0 {
			newer = append(newer, sv)
		}
	}
	newest := func(inRange func(string) bool) string {
		best := ""
		for _, n := range newer {
			if inRange(n) && (best == "" || semver.Compare(n, best) > 0) {
				best = n
			}
		}
		return best
	}
	for _, t := range release {
		var over string
		switch "v" + t {
		case "v" + latestTag:
			over = newest(func(string) bool { return true })
		case semver.Major(v):
			over = newest(func(n string) bool { return semver.Major(n) == semver.Major(v) })
		case semver.MajorMinor(v):
			over = newest(func(n string) bool { return semver.MajorMinor(n) == semver.MajorMinor(v) })
		}
		if over == "" {
			move = append(move, t)
			continue
		}
		held = append(held, Held{Tag: t, Reason: fmt.Sprintf("the repository holds the newer %s", strings.TrimPrefix(over, "v"))})
	}
	return move, held
}

// releaseVersion is the stable version a release's tags are made for
// ("v1.2.3" for v1.2.3 or 1.2.3), if they are a release's.
func releaseVersion(release []string) (string, bool) {
	for _, t := range release {
		if sv, ok := semverOf(t); ok && semver.Build(sv) == "" {
			return sv, semver.Prerelease(sv) == ""
		}
	}
	return "", false
}

// IsVersion reports whether tag names exactly one release (v1.2.3, 1.2.3,
// 1.2.3-rc.1): such a tag is never moved to another image once published.
func IsVersion(tag string) bool {
	sv, ok := semverOf(tag)
	return ok && semver.Build(sv) == ""
}
