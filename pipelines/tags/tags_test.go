package tags

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// dockerTag is Docker's tag grammar; every tag Compute returns must match it.
var dockerTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

const (
	sha  = "0123456789abcdef0123456789abcdef01234567"
	sha7 = "0123456"
)

func TestCompute(t *testing.T) {
	long := strings.Repeat("a", 200)

	tests := []struct {
		name string
		in   Source
		want []string
	}{
		// Releases.
		{"version with v", Source{Version: "v1.2.3"}, []string{"v1.2.3", "1.2.3", "1.2", "1", "latest"}},
		// Decision: the tag as written plus the stripped forms; no "v1.2.3" is invented.
		{"version without v", Source{Version: "1.2.3"}, []string{"1.2.3", "1.2", "1", "latest"}},
		{"tag ref semver", Source{Ref: "refs/tags/v1.2.3"}, []string{"v1.2.3", "1.2.3", "1.2", "1", "latest"}},
		{"tag ref semver ignores sha", Source{Ref: "refs/tags/v1.2.3", SHA: sha}, []string{"v1.2.3", "1.2.3", "1.2", "1", "latest"}},
		{"release ignores sha", Source{Version: "v2.0.0", SHA: sha}, []string{"v2.0.0", "2.0.0", "2.0", "2", "latest"}},
		{"multi-digit numbers", Source{Version: "v10.20.30"}, []string{"v10.20.30", "10.20.30", "10.20", "10", "latest"}},
		{"prerelease", Source{Version: "v1.2.3-rc.1"}, []string{"v1.2.3-rc.1", "1.2.3-rc.1"}},
		{"prerelease without v", Source{Version: "1.2.3-rc.1"}, []string{"1.2.3-rc.1"}},
		{"prerelease tag ref", Source{Ref: "refs/tags/v2.0.8-beta.67"}, []string{"v2.0.8-beta.67", "2.0.8-beta.67"}},
		{"prerelease with hyphens and case", Source{Version: "v1.0.0-Alpha-2.x"}, []string{"v1.0.0-Alpha-2.x", "1.0.0-Alpha-2.x"}},
		// Major version zero: no bare "0" tag (metadata-action README, "Major version zero").
		{"v0 release", Source{Version: "v0.2.3"}, []string{"v0.2.3", "0.2.3", "0.2", "latest"}},
		{"v0.0 release", Source{Version: "0.0.1"}, []string{"0.0.1", "0.0", "latest"}},
		{"v0 prerelease", Source{Version: "v0.1.0-rc.1"}, []string{"v0.1.0-rc.1", "0.1.0-rc.1"}},
		{"v0 tag ref", Source{Ref: "refs/tags/v0.9.0"}, []string{"v0.9.0", "0.9.0", "0.9", "latest"}},
		// Version wins over Ref.
		{"version beats branch ref", Source{Version: "v1.2.3", Ref: "refs/heads/main", SHA: sha}, []string{"v1.2.3", "1.2.3", "1.2", "1", "latest"}},
		{"version beats tag ref", Source{Version: "v1.2.3", Ref: "refs/tags/v9.9.9"}, []string{"v1.2.3", "1.2.3", "1.2", "1", "latest"}},
		{"version beats invalid ref", Source{Version: "v1.2.3", Ref: "refs/remotes/origin/x"}, []string{"v1.2.3", "1.2.3", "1.2", "1", "latest"}},

		// Branches.
		{"main with sha", Source{Ref: "refs/heads/main", SHA: sha}, []string{"main", "main-" + sha7, "sha-" + sha7}},
		{"main without sha", Source{Ref: "refs/heads/main"}, []string{"main"}},
		{"bare branch", Source{Ref: "main", SHA: sha}, []string{"main", "main-" + sha7, "sha-" + sha7}},
		{"upper-case sha is lowered", Source{Ref: "main", SHA: strings.ToUpper(sha)}, []string{"main", "main-" + sha7, "sha-" + sha7}},
		{"short sha accepted", Source{Ref: "main", SHA: "abcdef1"}, []string{"main", "main-abcdef1", "sha-abcdef1"}},
		{"sha256 object name", Source{Ref: "main", SHA: strings.Repeat("ab", 32)}, []string{"main", "main-ababab" + "a", "sha-abababa"}},
		{"slash branch", Source{Ref: "refs/heads/feature/x"}, []string{"feature-x"}},
		{"bare slash branch", Source{Ref: "feature/x", SHA: sha}, []string{"feature-x", "feature-x-" + sha7, "sha-" + sha7}},
		{"invalid chars one dash each", Source{Ref: "feat@{x} y"}, []string{"feat--x--y"}},
		{"non-ascii rune one dash", Source{Ref: "caf\u00e9/\u65e5\u672c"}, []string{"caf----"}},
		{"upper case lowered", Source{Ref: "refs/heads/Feature/ABC_1.2"}, []string{"feature-abc_1.2"}},
		{"leading dots and dashes removed", Source{Ref: "refs/heads/.-/x"}, []string{"x"}},
		{"leading underscore kept", Source{Ref: "_wip"}, []string{"_wip"}},
		{"dependabot branch", Source{Ref: "refs/heads/dependabot/go_modules/golang.org/x/mod-0.29.0"}, []string{"dependabot-go_modules-golang.org-x-mod-0.29.0"}},
		{"long branch truncated", Source{Ref: "refs/heads/" + long, SHA: sha}, []string{long[:128], long[:120] + "-" + sha7, "sha-" + sha7}},
		{"branch exactly 128", Source{Ref: long[:128]}, []string{long[:128]}},
		{"branch named like a sha tag is prefixed", Source{Ref: "sha-" + sha7, SHA: sha}, []string{"branch-sha-" + sha7, "branch-sha-" + sha7 + "-" + sha7, "sha-" + sha7}},
		{"branch named latest never moves latest", Source{Ref: "refs/heads/latest", SHA: sha}, []string{"branch-latest", "branch-latest-" + sha7, "sha-" + sha7}},
		{"branch named like a release", Source{Ref: "refs/heads/v1.2.3"}, []string{"branch-v1.2.3"}},
		{"branch named like a moving tag", Source{Ref: "refs/heads/1.2"}, []string{"branch-1.2"}},
		{"branch named like a pull request", Source{Ref: "refs/heads/pr-7"}, []string{"branch-pr-7"}},
		{"branch merely starting with a digit", Source{Ref: "refs/heads/1.x"}, []string{"1.x"}},

		// Pull requests.
		{"pr field", Source{PR: 12}, []string{"pr-12"}},
		{"pr field with sha adds nothing", Source{PR: 12, SHA: sha}, []string{"pr-12"}},
		{"pr beats branch ref", Source{PR: 12, Ref: "refs/heads/feature/x", SHA: sha}, []string{"pr-12"}},
		{"pr beats pull ref", Source{PR: 12, Ref: "refs/pull/99/merge"}, []string{"pr-12"}},
		{"pr beats invalid ref", Source{PR: 7, Ref: "refs/remotes/x"}, []string{"pr-7"}},
		{"pull merge ref", Source{Ref: "refs/pull/12/merge", SHA: sha}, []string{"pr-12"}},
		{"pull head ref", Source{Ref: "refs/pull/3/head"}, []string{"pr-3"}},

		// Git tags that are not semantic versions.
		{"nightly tag", Source{Ref: "refs/tags/nightly"}, []string{"nightly"}},
		{"nightly tag with sha", Source{Ref: "refs/tags/nightly", SHA: sha}, []string{"nightly", "sha-" + sha7}},
		{"shorthand version tag is not semver", Source{Ref: "refs/tags/v1.2"}, []string{"tag-v1.2"}},
		{"leading zero is not semver", Source{Ref: "refs/tags/v01.2.3"}, []string{"tag-v01.2.3"}},
		{"upper V is not semver, nor taken for v1.2.3", Source{Ref: "refs/tags/V1.2.3"}, []string{"tag-v1.2.3"}},
		{"major-only tag is not semver", Source{Ref: "refs/tags/v1"}, []string{"tag-v1"}},
		{"shorthand with prerelease is not semver", Source{Ref: "refs/tags/v1.2-rc.1"}, []string{"tag-v1.2-rc.1"}},
		{"slash tag sanitized", Source{Ref: "refs/tags/release/2024.05"}, []string{"release-2024.05"}},
		{"git tag named latest", Source{Ref: "refs/tags/latest"}, []string{"tag-latest"}},
		{"long tag truncated", Source{Ref: "refs/tags/" + long, SHA: sha}, []string{long[:128], "sha-" + sha7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Compute(tt.in)
			if err != nil {
				t.Fatalf("Compute(%+v) error: %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Compute(%+v)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			for _, tag := range got {
				if !dockerTag.MatchString(tag) {
					t.Errorf("tag %q does not match Docker's tag grammar", tag)
				}
			}
		})
	}
}

func TestComputeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   Source
		// every string must appear in the error text
		want []string
	}{
		{"nothing", Source{}, []string{"nothing to tag", "Version", "Ref", "PR"}},
		{"sha only", Source{SHA: sha}, []string{"nothing to tag", "SHA alone"}},
		{"sha non-hex", Source{Ref: "main", SHA: "xyz1234567"}, []string{`"xyz1234567"`, "hexadecimal"}},
		{"sha too short", Source{Ref: "main", SHA: "abc12"}, []string{`"abc12"`, "7 to 64"}},
		{"sha too long", Source{Ref: "main", SHA: strings.Repeat("a", 65)}, []string{strings.Repeat("a", 65)}},
		{"sha with space", Source{Ref: "main", SHA: " " + sha}, []string{`" ` + sha + `"`}},
		{"sha checked on release", Source{Version: "v1.2.3", SHA: "nothex!"}, []string{`"nothex!"`}},
		{"sha checked on pr", Source{PR: 1, SHA: "zz"}, []string{`"zz"`}},
		{"negative pr", Source{PR: -4}, []string{"-4"}},
		{"bad version", Source{Version: "1.0"}, []string{`"1.0"`, "MAJOR.MINOR.PATCH"}},
		{"latest as version", Source{Version: "latest"}, []string{`"latest"`, "MAJOR.MINOR.PATCH"}},
		{"build metadata version", Source{Version: "v1.2.3+meta.1"}, []string{`"v1.2.3+meta.1"`, "build metadata", `"v1.2.3"`}},
		{"build metadata tag ref", Source{Ref: "refs/tags/v1.2.3+meta"}, []string{`"refs/tags/v1.2.3+meta"`, "build metadata"}},
		{"build metadata on prerelease tag ref", Source{Ref: "refs/tags/1.2.3-rc.1+meta.01"}, []string{"build metadata", `"1.2.3-rc.1"`}},
		{"pull ref with sign", Source{Ref: "refs/pull/+12/merge"}, []string{`"refs/pull/+12/merge"`}},
		{"too long version", Source{Version: "v1.2.3-" + strings.Repeat("a", 130)}, []string{"at most 128"}},
		{"too long semver tag ref", Source{Ref: "refs/tags/1.2.3-" + strings.Repeat("a", 130)}, []string{"at most 128"}},
		{"version with pr", Source{Version: "v1.2.3", PR: 5}, []string{`"v1.2.3"`, "pull request"}},
		{"version with pull ref", Source{Version: "v1.2.3", Ref: "refs/pull/5/merge"}, []string{`"v1.2.3"`, `"refs/pull/5/merge"`}},
		{"unknown ref namespace", Source{Ref: "refs/remotes/origin/main"}, []string{`"refs/remotes/origin/main"`, "refs/heads/"}},
		{"empty branch ref", Source{Ref: "refs/heads/"}, []string{`"refs/heads/"`}},
		{"empty tag ref", Source{Ref: "refs/tags/"}, []string{`"refs/tags/"`}},
		{"branch sanitizes to nothing", Source{Ref: "refs/heads/..."}, []string{`"..."`, "no characters"}},
		{"tag sanitizes to nothing", Source{Ref: "refs/tags/-"}, []string{`"-"`, "no characters"}},
		{"pull ref not a number", Source{Ref: "refs/pull/abc/merge"}, []string{`"refs/pull/abc/merge"`}},
		{"pull ref zero", Source{Ref: "refs/pull/0/merge"}, []string{`"refs/pull/0/merge"`}},
		{"pull ref leading zero", Source{Ref: "refs/pull/012/merge"}, []string{`"refs/pull/012/merge"`}},
		{"pull ref without suffix", Source{Ref: "refs/pull/12"}, []string{`"refs/pull/12"`}},
		{"pull ref overflow", Source{Ref: "refs/pull/99999999999999999999/merge"}, []string{"99999999999999999999"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Compute(tt.in)
			if err == nil {
				t.Fatalf("Compute(%+v) = %q, want an error", tt.in, got)
			}
			if got != nil {
				t.Errorf("Compute(%+v) returned tags %q along with error", tt.in, got)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestComputeDeterministic(t *testing.T) {
	in := Source{Ref: "refs/heads/feature/x", SHA: sha}
	first, err := Compute(in)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := Compute(in)
		if err != nil || !reflect.DeepEqual(first, again) {
			t.Fatalf("Compute is not deterministic: %q then %q (%v)", first, again, err)
		}
	}
}

func TestValidateVersion(t *testing.T) {
	valid := []string{
		"v1.0.0", "1.0.0", "v1.2.3-rc.1", "0.0.0", "v0.1.0",
		"1.2.3-alpha", "1.2.3-0.3.7", "1.2.3-x.7.z.92", "1.2.3-x-y-z.--",
		"1.2.3-0a",                   // a leading zero is only forbidden in an all-digit identifier
		"v999999999999999999999.0.0", // semver puts no bound on numbers
	}
	for _, v := range valid {
		if err := ValidateVersion(v); err != nil {
			t.Errorf("ValidateVersion(%q) = %v, want nil", v, err)
		}
	}

	invalid := []string{
		"", "1.0", "v1", "latest", "v", "1", "1.2.3.4", "vv1.2.3", "V1.2.3",
		" v1.2.3", "v1.2.3 ", "01.2.3", "1.02.3", "1.2.03", "1.2.3-", "1.2.3-rc..1",
		"1.2.3-01", "1.2.3-rc_1", "1.2.3+", "1.2.3+build", "1.2.3-rc.1+build.5",
		"-1.2.3", "1.-2.3", "1..3", "a.b.c", "1.2.3-r\u00e9",
		"v1.2-rc.1", "1.2.3-00", "1.2.3+b.01", "1.2.3-rc.1+",
		"1.2.3-" + strings.Repeat("x", 123), // 129 characters
	}
	for _, v := range invalid {
		err := ValidateVersion(v)
		if err == nil {
			t.Errorf("ValidateVersion(%q) = nil, want an error", v)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", v)) {
			t.Errorf("ValidateVersion(%q) error %q does not name the value", v, err)
		}
	}

	// The error explains the expected form.
	err := ValidateVersion("1.0")
	if err == nil || !strings.Contains(err.Error(), "MAJOR.MINOR.PATCH") || !strings.Contains(err.Error(), `"v1.2.3"`) {
		t.Errorf("ValidateVersion(\"1.0\") = %v, want it to describe the expected form", err)
	}
	// 128 characters is still a valid tag.
	if v := "1.2.3-" + strings.Repeat("x", 122); ValidateVersion(v) != nil {
		t.Errorf("ValidateVersion of a %d-character version = %v, want nil", len(v), ValidateVersion(v))
	}
}

func FuzzCompute(f *testing.F) {
	f.Add("v1.2.3", "", "", 0)
	f.Add("", "refs/tags/v1.2.3-rc.1", sha, 0)
	f.Add("", "refs/tags/nightly", sha, 0)
	f.Add("", "refs/heads/feature/X", sha, 0)
	f.Add("", "..-caf\u00e9/\xff"+strings.Repeat("b", 130), strings.ToUpper(sha), 0)
	f.Add("", "refs/pull/12/merge", "", 0)
	f.Add("", "main", "", 42)
	f.Add("v0.1.0+x", "refs/heads/main", "abc", -1)
	f.Fuzz(func(t *testing.T, version, ref, sha string, pr int) {
		in := Source{Version: version, Ref: ref, SHA: sha, PR: pr}
		got, err := Compute(in)
		if err != nil {
			if got != nil {
				t.Fatalf("Compute(%+v) returned tags %q with error %v", in, got, err)
			}
			return
		}
		if len(got) == 0 {
			t.Fatalf("Compute(%+v) returned no tags and no error", in)
		}
		seen := map[string]bool{}
		for _, tag := range got {
			if !dockerTag.MatchString(tag) {
				t.Fatalf("Compute(%+v) tag %q does not match Docker's tag grammar", in, tag)
			}
			if seen[tag] {
				t.Fatalf("Compute(%+v) returned %q twice: %q", in, tag, got)
			}
			seen[tag] = true
		}
		again, _ := Compute(in)
		if !reflect.DeepEqual(got, again) {
			t.Fatalf("Compute(%+v) is not deterministic: %q then %q", in, got, again)
		}
	})
}
