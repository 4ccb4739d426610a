package registry

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bot-core/delivery/pipelines/registry/registrytest"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// release is what pushRelease put in the registry for one version.
type release struct {
	index     string
	platforms []string
	// attachments are the cosign tags signing the index and signing and
	// attesting each platform, as build-all's sign --recursive and attest do.
	attachments map[string]string // tag -> digest
}

func pushRelease(t *testing.T, srv *registrytest.Server, repo, version string, day int) release {
	t.Helper()
	idx := registrytest.Index(t, map[string]string{"org.opencontainers.image.version": version}, time.Date(2024, 1, day, 0, 0, 0, 0, time.UTC))
	r := release{index: srv.Push(t, repo+":"+version, idx), attachments: map[string]string{}}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		r.platforms = append(r.platforms, m.Digest.String())
	}
	sign := func(subject, kind string) {
		tag := CosignTag(subject, kind)
		r.attachments[tag] = srv.PushImage(t, repo+":"+tag)
	}
	sign(r.index, "sig")
	for _, p := range r.platforms {
		sign(p, "sig")
		sign(p, "att")
	}
	return r
}

func testRepo(t *testing.T, srv *registrytest.Server) (string, name.Repository, []remote.Option) {
	t.Helper()
	s := srv.Host + "/bot/svc"
	repo, err := name.NewRepository(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return s, repo, []remote.Option{remote.WithAuth(srv.Auth())}
}

func TestCleanupKeepsProtectedAndRemovesAttachments(t *testing.T) {
	srv := registrytest.NewBasic(t)
	repoName, repo, opts := testRepo(t, srv)
	rel := map[string]release{}
	for i, v := range []string{"v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0"} {
		rel[v] = pushRelease(t, srv, repoName, v, i+1)
	}
	protected := Protected{}
	// The running release by its index digest, the rollback target by one
	// of its platform manifests: both keep the whole release.
	if err := protected.Add(rel["v1.0.0"].index, "deployed v1.0.0 (state file s.json)"); err != nil {
		t.Fatal(err)
	}
	if err := protected.Add(rel["v1.1.0"].platforms[1], "the rollback target v1.1.0 (state file s.json)"); err != nil {
		t.Fatal(err)
	}

	plan, applied, err := Cleanup(context.Background(), repo, 2, protected, true, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Delete) != 1 || plan.Delete[0].Digest != rel["v1.2.0"].index {
		t.Fatalf("plan deletes %+v, want only v1.2.0", plan.Delete)
	}
	if want := []Applied{{Digest: rel["v1.2.0"].index, Deleted: true}}; !reflect.DeepEqual(applied, want) {
		t.Errorf("applied %+v, want %+v", applied, want)
	}
	if n := plan.DeletedManifests(); n != 1+2+5 {
		t.Errorf("plan deletes %d manifests, want the index, 2 platforms and 5 attachments", n)
	}
	reasons := map[string]string{}
	for _, k := range plan.Kept {
		reasons[k.Digest] = strings.Join(k.Reasons, "; ")
	}
	if r := reasons[rel["v1.0.0"].index]; r != "deployed v1.0.0 (state file s.json)" {
		t.Errorf("v1.0.0 kept because %q", r)
	}
	if r, want := reasons[rel["v1.1.0"].index], "its platform manifest "+rel["v1.1.0"].platforms[1][:19]+" is the rollback target v1.1.0 (state file s.json)"; r != want {
		t.Errorf("v1.1.0 kept because %q, want %q", r, want)
	}

	tags := srv.Tags(t, repoName)
	for v, r := range rel {
		gone := v == "v1.2.0"
		for _, d := range append([]string{r.index}, r.platforms...) {
			if srv.Exists(t, repoName, d) == gone {
				t.Errorf("%s: manifest %s exists=%v", v, d, !gone)
			}
		}
		for tag, d := range r.attachments {
			if slices.Contains(tags, tag) == gone || srv.Exists(t, repoName, d) == gone {
				t.Errorf("%s: attachment %s tagged=%v exists=%v, want both %v", v, tag, slices.Contains(tags, tag), srv.Exists(t, repoName, d), !gone)
			}
		}
		if slices.Contains(tags, v) == gone {
			t.Errorf("tag %s present=%v", v, !gone)
		}
	}
}

func TestApplyCleanupLeavesChangedTagsAlone(t *testing.T) {
	srv := registrytest.NewBasic(t)
	repoName, repo, opts := testRepo(t, srv)
	rel := map[string]release{}
	for i, v := range []string{"v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0"} {
		rel[v] = pushRelease(t, srv, repoName, v, i+1)
	}
	ctx := context.Background()
	plan, err := PlanRepositoryCleanup(ctx, repo, 1, nil, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	var planned []string
	for _, d := range plan.Delete {
		planned = append(planned, d.Tags[0])
	}
	if want := []string{"v1.3.0", "v1.2.0", "v1.1.0", "v1.0.0"}; !reflect.DeepEqual(planned, want) {
		t.Fatalf("planned %v, want %v", planned, want)
	}

	// Between plan and apply: v1.3.0 is re-pointed, and latest now names
	// v1.2.0 (an operator rolling back by tag).
	srv.Tag(t, repoName, "v1.3.0", rel["v1.4.0"].index)
	srv.Tag(t, repoName, "latest", rel["v1.2.0"].index)
	// While applying, after the tags were read again: v1.0.0 moves right
	// before its turn, which only the last re-read can see.
	progress := func(format string, args ...any) {
		if strings.HasPrefix(fmt.Sprintf(format, args...), "deleting "+repoName+"@"+rel["v1.1.0"].index) {
			srv.Tag(t, repoName, "v1.0.0", rel["v1.4.0"].index)
		}
	}
	applied, err := ApplyCleanup(ctx, repo, plan, progress, opts...)
	if err != nil {
		t.Fatal(err)
	}
	want := []Applied{
		{Digest: rel["v1.3.0"].index, LeftAlone: "tag v1.3.0 moved since the plan"},
		{Digest: rel["v1.2.0"].index, LeftAlone: "tag latest points to it since the plan"},
		{Digest: rel["v1.1.0"].index, Deleted: true},
		{Digest: rel["v1.0.0"].index, LeftAlone: "tag v1.0.0 moved since the plan"},
	}
	if !reflect.DeepEqual(applied, want) {
		t.Errorf("applied %+v\nwant    %+v", applied, want)
	}
	tags := srv.Tags(t, repoName)
	for v, r := range rel {
		gone := v == "v1.1.0"
		for _, d := range append([]string{r.index}, r.platforms...) {
			if srv.Exists(t, repoName, d) == gone {
				t.Errorf("%s: manifest %s exists=%v", v, d, !gone)
			}
		}
		for tag := range r.attachments {
			if slices.Contains(tags, tag) == gone {
				t.Errorf("%s: attachment tag %s present=%v", v, tag, !gone)
			}
		}
	}
	for _, tag := range []string{"v1.0.0", "v1.2.0", "v1.3.0", "v1.4.0", "latest"} {
		if !slices.Contains(tags, tag) {
			t.Errorf("tag %s was deleted", tag)
		}
	}
}

func TestProtectedRejectsBadDigests(t *testing.T) {
	p := Protected{}
	for _, bad := range []string{"", "v1.2.3", "sha256:abc", "sha512:" + strings.Repeat("a", 128), strings.Repeat("a", 64)} {
		if err := p.Add(bad, "why"); err == nil || !strings.Contains(err.Error(), "is not an image digest") {
			t.Errorf("Add(%q) = %v", bad, err)
		}
	}
	if len(p) != 0 {
		t.Errorf("bad digests were added: %v", p)
	}
	if err := p.Add(digestOf("a"), "why"); err != nil || !reflect.DeepEqual(p[digestOf("a")], []string{"why"}) {
		t.Errorf("Add(good) = %v, %v", err, p)
	}
}
