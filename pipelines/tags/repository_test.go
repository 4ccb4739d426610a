package tags

import (
	"reflect"
	"testing"
)

func TestFitNeverMovesTagsBackwards(t *testing.T) {
	rel := func(v string) []string {
		tags, err := Compute(Source{Version: v})
		if err != nil {
			t.Fatal(err)
		}
		return tags
	}
	for _, tc := range []struct {
		name     string
		release  []string
		existing []string
		move     []string
		held     []Held
	}{
		{"first release", rel("v1.0.0"), nil, rel("v1.0.0"), nil},
		{"newer release moves all", rel("v1.3.0"), []string{"v1.2.0", "1.2.0", "1.2", "1", "latest", "main", "sha-0123abc"}, rel("v1.3.0"), nil},
		{"hotfix of an older minor", rel("v1.1.5"), []string{"v1.2.0", "v1.1.4", "latest", "1", "1.2", "1.1"},
			[]string{"v1.1.5", "1.1.5", "1.1"},
			[]Held{{"1", "the repository holds the newer 1.2.0"}, {"latest", "the repository holds the newer 1.2.0"}}},
		{"hotfix of an older major", rel("v1.4.1"), []string{"v2.0.0", "v1.4.0"},
			[]string{"v1.4.1", "1.4.1", "1.4", "1"},
			[]Held{{"latest", "the repository holds the newer 2.0.0"}}},
		{"older patch of the same minor", rel("1.2.3"), []string{"1.2.4"},
			[]string{"1.2.3"},
			[]Held{{"1.2", "the repository holds the newer 1.2.4"}, {"1", "the repository holds the newer 1.2.4"}, {"latest", "the repository holds the newer 1.2.4"}}},
		{"a newer pre-release does not count", rel("v1.2.0"), []string{"v1.3.0-rc.1", "v9.0.0+meta"}, rel("v1.2.0"), nil},
		{"republishing the same version", rel("v1.2.0"), []string{"v1.2.0", "latest"}, rel("v1.2.0"), nil},
		{"pre-release unchanged", rel("v2.0.0-rc.1"), []string{"v3.0.0"}, rel("v2.0.0-rc.1"), nil},
		{"branch unchanged", []string{"main", "sha-0123abc"}, []string{"v9.9.9"}, []string{"main", "sha-0123abc"}, nil},
	} {
		move, held := Fit(tc.release, tc.existing)
		if !reflect.DeepEqual(move, tc.move) || !reflect.DeepEqual(held, tc.held) {
			t.Errorf("%s: move %v held %v; want %v, %v", tc.name, move, held, tc.move, tc.held)
		}
	}
}

func TestIsVersion(t *testing.T) {
	for tag, want := range map[string]bool{"v1.2.3": true, "1.2.3": true, "v1.2.3-rc.1": true, "1.2": false, "1": false, "latest": false, "main": false, "tag-v1.2.3": false} {
		if IsVersion(tag) != want {
			t.Errorf("IsVersion(%q) = %v", tag, !want)
		}
	}
}
