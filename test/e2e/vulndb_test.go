package e2e

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bot-core/delivery/test/trivydbtest"
)

// dbMirror serves a Trivy database on 127.0.0.1 as a company mirror of
// ghcr.io/aquasecurity/trivy-db would, and counts downloads of its layer.
func dbMirror(t *testing.T) (ref string, layerGets *atomic.Int64) {
	t.Helper()
	img, err := trivydbtest.Artifact(offlineDB(t))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	digest, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	layerGets = new(atomic.Int64)
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+digest.String()) {
			layerGets.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	ref = u.Host + "/aquasecurity/trivy-db:2"
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref, layerGets
}

// Without --trivy-db the release gets the database once, first: a database
// that cannot be had ends it before any build, and the scans of every
// service and platform share one download from the mirror.
func TestVulnDBFetchedOnceFirst(t *testing.T) {
	ref, layerGets := dbMirror(t)
	mirror := strings.SplitN(ref, "/", 2)[0]
	given := hostTool(t)
	args := func(repo string, more ...string) []string {
		return append([]string{"--tool", given.path, "build-all", "--trivy-db-repository", repo, "--host-services", "tcp://" + mirror,
			"--version", "v4.1.0", "--source-date-epoch", "1700000000", "--build-only"}, more...)
	}

	t.Run("a database that cannot be had fails the run before any build", func(t *testing.T) {
		missing := mirror + "/aquasecurity/no-such-db:2"
		stderr, err := daggerCallErr(t, repoRoot(t), args(missing, "--services", "python-ai-service", "--platforms", "linux/amd64")...)
		if err == nil {
			t.Fatalf("build-all ran without a vulnerability database:\n%s", tail(stderr, 30))
		}
		for _, want := range []string{"the vulnerability database cannot be had, so nothing can be scanned or pushed",
			"cannot download the vulnerability DB (" + missing + ": ", "--trivy-db-repository REF"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("the error does not say %q:\n%s", want, tail(stderr, 30))
			}
		}
		if strings.Contains(stderr, "stage build") {
			t.Errorf("a build stage started before the database was checked:\n%s", tail(stderr, 30))
		}
	})

	t.Run("six scans share one download from the mirror", func(t *testing.T) {
		out := t.TempDir()
		stderr, err := daggerCallErr(t, repoRoot(t), append(args(ref), "export", "--path", out)...)
		if err != nil {
			t.Fatalf("build-all --trivy-db-repository: %v\n%s", err, tail(stderr, 60))
		}
		rel := readRelease(t, out)
		if rel.Scan == nil || rel.Scan.DB != "download" || !slices.Equal(rel.Scan.DBRepositories, []string{ref}) {
			t.Errorf("release.json scan %+v, want the database downloaded from %s", rel.Scan, ref)
		}
		scans := 0
		for _, s := range rel.Services {
			scans += len(s.Reports)
		}
		if scans != 6 {
			t.Errorf("%d scans in release.json, want 6 (three services, two platforms)", scans)
		}
		if n := layerGets.Load(); n != 1 {
			t.Errorf("the mirror served the database %d times, want once for all the scans", n)
		}
	})
}
