package registry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

func digestOf(c string) string { return "sha256:" + strings.Repeat(c, 64) }

func deletedDigests(p CleanupPlan) []string {
	var out []string
	for _, d := range p.Delete {
		out = append(out, d.Digest)
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string { slices.Sort(s); return s }

func TestClassify(t *testing.T) {
	tests := []struct {
		tag     string
		class   TagClass
		version string
	}{
		{"v1.2.3", ClassRelease, "1.2.3"},
		{"1.2.3", ClassRelease, "1.2.3"},
		{"v2.0.0-rc.1", ClassPrerelease, "2.0.0-rc.1"},
		{"1.2", ClassOther, ""},
		{"1", ClassOther, ""},
		{"latest", ClassOther, ""},
		{"main", ClassOther, ""},
		{"sha-abcdef1", ClassOther, ""},
		{"pr-12", ClassOther, ""},
		{"V1.2.3", ClassOther, ""},
		{"v01.2.3", ClassOther, ""},
		{CosignTag(digestOf("a"), "sig"), ClassCosign, ""},
		{CosignTag(digestOf("a"), "att"), ClassCosign, ""},
		{"sha256-abc.sig", ClassOther, ""},
	}
	for _, tt := range tests {
		class, v := Classify(tt.tag)
		if class != tt.class || v != tt.version {
			t.Errorf("Classify(%q) = %s, %q; want %s, %q", tt.tag, class, v, tt.class, tt.version)
		}
	}
	if d, k := CosignSubject(CosignTag(digestOf("b"), "att")); d != digestOf("b") || k != "att" {
		t.Errorf("CosignSubject = %s %s", d, k)
	}
}

func TestSemverFirst(t *testing.T) {
	var list []TagInfo
	for _, tag := range []string{"main", "1.0.0", "v1.10.0", "latest", "v1.2.0", "v1.0.0", "v2.0.0-rc.1", "v2.0.0-beta.2", "1.2", "v1.9.9"} {
		c, v := Classify(tag)
		list = append(list, TagInfo{Tag: tag, Class: c, Version: v})
	}
	SemverFirst(list)
	var got []string
	for _, ti := range list {
		got = append(got, ti.Tag)
	}
	want := []string{"v2.0.0-rc.1", "v2.0.0-beta.2", "v1.10.0", "v1.9.9", "v1.2.0", "v1.0.0", "1.0.0", "1.2", "latest", "main"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func TestPlanCleanup(t *testing.T) {
	refs := []TagRef{
		{"v1.0.0", digestOf("0")},
		{"v1.1.0", digestOf("1")},
		{"1.1.0", digestOf("1")}, // same release, no "v"
		{"v1.2.0-rc.1", digestOf("2")},
		{"v1.2.0", digestOf("3")},
		{"v1.3.0", digestOf("4")},
		{"v1.4.0", digestOf("5")},
		{"v1.4.0-rc.1", digestOf("6")}, // older than kept v1.4.0 but newer than oldest kept v1.3.0
		{"v2.0.0-rc.1", digestOf("7")},
		{"v1.0.1", digestOf("5")}, // old release sharing a kept digest
		{"main", digestOf("0")},   // other tag protects v1.0.0
		{"latest", digestOf("5")},
		{CosignTag(digestOf("1"), "sig"), digestOf("a")}, // subject deleted: goes too
		{CosignTag(digestOf("5"), "sig"), digestOf("b")}, // subject kept
	}
	plan, err := PlanCleanup(refs, 2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"2.0.0-rc.1", "1.4.0", "1.4.0-rc.1", "1.3.0"}; !reflect.DeepEqual(plan.KeptReleases, want) {
		t.Errorf("kept releases %v, want %v", plan.KeptReleases, want)
	}
	if got, want := deletedDigests(plan), sorted(digestOf("1"), digestOf("2"), digestOf("3")); !reflect.DeepEqual(got, want) {
		t.Errorf("deleted %v\nwant %v", got, want)
	}
	for _, d := range plan.Delete {
		if d.Digest == digestOf("1") && !reflect.DeepEqual(d.Tags, []string{"v1.1.0", "1.1.0"}) {
			t.Errorf("tags of the v1.1.0 digest: %v", d.Tags)
		}
		if want := []TagRef{{CosignTag(digestOf("1"), "sig"), digestOf("a")}}; d.Digest == digestOf("1") && !reflect.DeepEqual(d.Attachments, want) {
			t.Errorf("attachments of the v1.1.0 digest: %v, want its signature", d.Attachments)
		}
	}
	if plan.DeletedTags() != 5 {
		t.Errorf("deleted tags %d, want 5", plan.DeletedTags())
	}
	if plan.Delete[0].Tags[0] != "v1.2.0" {
		t.Errorf("deletions not newest first: %+v", plan.Delete)
	}
}

func TestPlanCleanupChildrenAndEdges(t *testing.T) {
	refs := []TagRef{
		{"v1.0.0", digestOf("0")}, // an image that is also a child of the kept index
		{"v1.1.0", digestOf("1")},
		{"v1.2.0", digestOf("2")},
	}
	children := func(d string) ([]string, error) {
		if d == digestOf("2") {
			return []string{digestOf("0"), digestOf("9")}, nil
		}
		return nil, nil
	}
	plan, err := PlanCleanup(refs, 1, nil, children)
	if err != nil {
		t.Fatal(err)
	}
	if got := deletedDigests(plan); !reflect.DeepEqual(got, []string{digestOf("1")}) {
		t.Errorf("deleted %v", got)
	}

	boom := errors.New("boom")
	if _, err := PlanCleanup(refs, 1, nil, func(string) ([]string, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("children error lost: %v", err)
	}
	for _, keep := range []int{0, -1} {
		_, err := PlanCleanup(refs, keep, nil, nil)
		if !errors.Is(err, ErrKeepTooLow) {
			t.Errorf("PlanCleanup with keep %d: error %v, want ErrKeepTooLow", keep, err)
		}
		if err != nil && strings.Contains(err.Error(), "--") {
			t.Errorf("library error %q names a command-line flag", err)
		}
	}

	// Only pre-releases: the newest keep of them stay.
	pre := []TagRef{{"v1.0.0-rc.1", digestOf("0")}, {"v1.0.0-rc.2", digestOf("1")}, {"v1.0.0-rc.3", digestOf("2")}}
	plan, _ = PlanCleanup(pre, 2, nil, nil)
	if got := deletedDigests(plan); !reflect.DeepEqual(got, []string{digestOf("0")}) {
		t.Errorf("prerelease-only deleted %v", got)
	}

	// Fewer releases than keep: nothing released is deleted, older
	// pre-releases are.
	few := []TagRef{{"v0.9.0-rc.1", digestOf("0")}, {"v1.0.0", digestOf("1")}}
	plan, _ = PlanCleanup(few, 5, nil, nil)
	if got := deletedDigests(plan); !reflect.DeepEqual(got, []string{digestOf("0")}) {
		t.Errorf("few deleted %v", got)
	}

	// Nothing but other tags: nothing to do.
	plan, _ = PlanCleanup([]TagRef{{"main", digestOf("0")}, {"sha-abcdef1", digestOf("1")}}, 1, nil, nil)
	if len(plan.Delete) != 0 || len(plan.Kept) != 2 {
		t.Errorf("plan %+v", plan)
	}
}

func TestCleanupRefusesKeepBeforeAnyRequest(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	repo, err := name.NewRepository(strings.TrimPrefix(srv.URL, "http://")+"/bot/svc", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, applied, err := Cleanup(context.Background(), repo, 0, nil, true, nil)
	if !errors.Is(err, ErrKeepTooLow) || len(applied) != 0 {
		t.Errorf("Cleanup with keep 0 = %v applied, %v; want ErrKeepTooLow", applied, err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("Cleanup with keep 0 sent %d registry requests, want none", n)
	}
}

func TestPlanCleanupProtectedPlatforms(t *testing.T) {
	refs := []TagRef{
		{"v1.0.0", digestOf("0")},
		{"v1.1.0", digestOf("1")},
		{"v1.2.0", digestOf("2")},
		{CosignTag(digestOf("6"), "sig"), digestOf("b")}, // a platform two deleted releases share
		{CosignTag(digestOf("7"), "sig"), digestOf("a")}, // a platform a protected index shares
	}
	kids := map[string][]string{
		digestOf("0"): {digestOf("5"), digestOf("6")},
		digestOf("1"): {digestOf("6"), digestOf("7")},
		digestOf("2"): {digestOf("8")},
		digestOf("9"): {digestOf("7")}, // deployed, no longer tagged
	}
	var asked []string
	children := func(d string) ([]string, error) { asked = append(asked, d); return kids[d], nil }
	protected := Protected{}
	if err := protected.Add(digestOf("9"), "deployed"); err != nil {
		t.Fatal(err)
	}
	plan, err := PlanCleanup(refs, 1, protected, children)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(asked, digestOf("9")) {
		t.Errorf("the untagged protected index was not asked for its platforms (asked %v)", asked)
	}
	want := []Deletion{
		{Digest: digestOf("1"), Tags: []string{"v1.1.0"}, Platforms: []string{digestOf("6")},
			Attachments: []TagRef{{CosignTag(digestOf("6"), "sig"), digestOf("b")}}},
		{Digest: digestOf("0"), Tags: []string{"v1.0.0"}, Platforms: []string{digestOf("5"), digestOf("6")},
			Attachments: []TagRef{{CosignTag(digestOf("6"), "sig"), digestOf("b")}}},
	}
	if !reflect.DeepEqual(plan.Delete, want) {
		t.Errorf("delete %+v\nwant   %+v", plan.Delete, want)
	}
	if n := plan.DeletedManifests(); n != 5 {
		t.Errorf("DeletedManifests = %d, want 5 (the shared platform and its signature once)", n)
	}

	// A protected platform manifest keeps its whole release.
	protected = Protected{}
	_ = protected.Add(digestOf("5"), "the rollback target")
	plan, _ = PlanCleanup(refs, 1, protected, children)
	// v1.1.0 goes, but not its platform v1.0.0 shares, nor that one's
	// signature.
	if want := []Deletion{{Digest: digestOf("1"), Tags: []string{"v1.1.0"}, Platforms: []string{digestOf("7")},
		Attachments: []TagRef{{CosignTag(digestOf("7"), "sig"), digestOf("a")}}}}; !reflect.DeepEqual(plan.Delete, want) {
		t.Errorf("delete %+v\nwant   %+v", plan.Delete, want)
	}
	var reasons []string
	for _, k := range plan.Kept {
		if k.Digest == digestOf("0") {
			reasons = k.Reasons
		}
	}
	if want := []string{"its platform manifest " + digestOf("5")[:19] + " is the rollback target"}; !reflect.DeepEqual(reasons, want) {
		t.Errorf("v1.0.0 kept because %v, want %v", reasons, want)
	}
}
