package publish

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header  string
		attempt int
		want    time.Duration
	}{
		{"3", 1, 3 * time.Second},
		{"0", 2, 0},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 1, 5 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 1, 0},
		{"", 1, time.Second},
		{"soon", 3, 4 * time.Second},
		{"86400", 1, maxRetryAfter},
	} {
		if got := retryAfter(tc.header, now, tc.attempt); got != tc.want {
			t.Errorf("Retry-After %q, attempt %d: %s, want %s", tc.header, tc.attempt, got, tc.want)
		}
	}
}

// flakyRegistry is a real registry behind a front that can answer 429 or
// stall.
func flakyRegistry(t *testing.T, front func(w http.ResponseWriter, r *http.Request) bool) string {
	t.Helper()
	reg := registry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !front(w, r) {
			reg.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

// A registry that rate-limits two tag moves is waited
// for as it asks, and the release completes.
func TestRateLimitedReleaseWaitsAndCompletes(t *testing.T) {
	var limited atomic.Int32
	host := flakyRegistry(t, func(w http.ResponseWriter, r *http.Request) bool {
		// Tag moves are sequential, so the two waits add up.
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") && !strings.Contains(r.URL.Path, "sha256:") && limited.Load() < 2 {
			limited.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
			return true
		}
		return false
	})
	repo, _ := name.NewRepository(host + "/bot-core/rust-core-engine")
	idx := twoPlatformIndex(t)
	start := time.Now()
	reg := Registry{Options: []remote.Option{remote.WithTransport(Transport(nil))}}
	if _, err := Release(context.Background(), reg, []Item{{Repo: repo, Index: idx}}, []string{"v1.0.0", "latest"}, Hooks{}); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); limited.Load() != 2 || elapsed < 2*time.Second {
		t.Errorf("%d requests limited, release took %s; want 2 and two waits of 1s", limited.Load(), elapsed)
	}
	want, _ := idx.Digest()
	if d, err := remote.Head(repo.Tag("latest")); err != nil || d.Digest != want {
		t.Errorf("latest = %v, %v", d, err)
	}
}

// A registry that stops answering fails the release at the first request
// that stalls, and before any tag moves.
func TestStalledRegistryFailsInsteadOfHanging(t *testing.T) {
	ResponseTimeout = 200 * time.Millisecond
	t.Cleanup(func() { ResponseTimeout = 2 * time.Minute })
	stall := make(chan struct{})
	host := flakyRegistry(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/v1.0.0") {
			<-stall
			return true
		}
		return false
	})
	// Registered after the server's Close, so it runs first and lets the
	// stalled handlers return.
	t.Cleanup(func() { close(stall) })
	repo, _ := name.NewRepository(host + "/bot-core/rust-core-engine")
	reg := Registry{Options: []remote.Option{
		remote.WithTransport(Transport(nil)),
		remote.WithRetryBackoff(remote.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 2}),
	}}
	done := make(chan error, 1)
	go func() {
		_, err := Release(context.Background(), reg, []Item{{Repo: repo, Index: twoPlatformIndex(t)}}, []string{"v1.0.0", "latest"}, Hooks{})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "timeout awaiting response headers") || !strings.Contains(err.Error(), "no tag was moved") {
			t.Fatalf("error %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the release hangs on a stalled registry")
	}
	if _, err := remote.Head(repo.Tag("latest")); err == nil {
		t.Error("latest moved although the tag step failed")
	}
}
