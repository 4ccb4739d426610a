package publish

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Limits of Transport; variables so tests can shorten them.
var (
	// ResponseTimeout bounds the wait for a registry's response headers: a
	// stalled registry fails the request (and ggcr's retries take over)
	// instead of hanging the release.
	ResponseTimeout = 2 * time.Minute
	// rateLimitAttempts and maxRetryAfter bound how long a rate-limited
	// request waits in all.
	rateLimitAttempts = 5
	maxRetryAfter     = time.Minute
)

// Transport wraps base (nil: go-containerregistry's DefaultTransport) for
// registry calls: every response must start within ResponseTimeout, and a
// 429 is retried after the wait the registry asks for in Retry-After.
// go-containerregistry retries 5xx itself but not 429, and never reads
// Retry-After.
func Transport(base *http.Transport) http.RoundTripper {
	if base == nil {
		base = remote.DefaultTransport.(*http.Transport).Clone()
	} else {
		base = base.Clone()
	}
	base.ResponseHeaderTimeout = ResponseTimeout
	return rateLimited{base}
}

type rateLimited struct{ next http.RoundTripper }

func (t rateLimited) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := t.next.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || attempt == rateLimitAttempts {
			return resp, err
		}
		// A request whose body cannot be read again (a streamed upload)
		// goes back to the caller as it is.
		if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
			return resp, nil
		}
		wait := retryAfter(resp.Header.Get("Retry-After"), time.Now(), attempt)
		resp.Body.Close()
		if err := sleep(req.Context(), wait); err != nil {
			return nil, fmt.Errorf("%s %s: rate limited (HTTP 429), gave up waiting %s: %w", req.Method, req.URL.Redacted(), wait, err)
		}
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

// retryAfter reads Retry-After (seconds or an HTTP date); without one it
// backs off 1s, 2s, 4s, ... Never more than maxRetryAfter.
func retryAfter(header string, now time.Time, attempt int) time.Duration {
	wait := time.Second << (attempt - 1)
	if s, err := strconv.Atoi(header); err == nil && s >= 0 {
		wait = time.Duration(s) * time.Second
	} else if at, err := http.ParseTime(header); err == nil {
		wait = max(at.Sub(now), 0)
	}
	return min(wait, maxRetryAfter)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
