// Package labels computes the OCI image labels of a bot-core image and reads
// SOURCE_DATE_EPOCH for their created time, so that an image can be traced
// back to its release and commit and a rebuild of the same commit carries
// identical labels.
//
// It is imported by the Dagger module, where every dependency is resolved
// inside the engine, so it depends on the standard library only and does no
// I/O.
package labels

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// OCI annotation keys (from the OCI image spec's pre-defined annotations)
// that Labels fills in; exported so callers and tests can look values up
// without repeating the strings.
const (
	LabelVersion  = "org.opencontainers.image.version"
	LabelRevision = "org.opencontainers.image.revision"
	LabelSource   = "org.opencontainers.image.source"
	LabelCreated  = "org.opencontainers.image.created"
	LabelTitle    = "org.opencontainers.image.title"
)

// LabelHealthcheck is the health check an image declares, as a JSON array
// in exec form (["/usr/local/bin/botcore-probe", "http://127.0.0.1:8080/health"]).
// OCI image configs have no HEALTHCHECK and the engine does not set
// Docker's, so the label carries it: the start-up gate runs it, and
// `botcore deploy` gives it to compose for a service whose compose file
// names no health test.
const LabelHealthcheck = "com.bot-core.healthcheck"

// Meta carries the facts about an image that become its OCI labels, so that
// registries (e.g. GHCR linking a package to its repository through
// org.opencontainers.image.source) and users can trace an image back to its
// release and commit.
type Meta struct {
	// Version is the released version, e.g. "1.2.3" (written as given).
	Version string
	// Revision is the commit the image was built from.
	Revision string
	// Source is the URL of the source repository.
	Source string
	// Title is the human-readable name of the image.
	Title string
	// Created is when the image was built; for reproducible builds take it
	// from SOURCE_DATE_EPOCH (see CreatedFromEpoch). The zero time omits it.
	Created time.Time
}

// Labels returns the OCI labels for m: version, revision, source, title and
// created (RFC 3339, converted to UTC, whole seconds). Empty values and a
// zero Created are omitted rather than written as empty labels, which would
// override meaningful labels inherited from a base image. The map is never
// nil.
func Labels(m Meta) map[string]string {
	labels := make(map[string]string, 5)
	for key, value := range map[string]string{
		LabelVersion:  m.Version,
		LabelRevision: m.Revision,
		LabelSource:   m.Source,
		LabelTitle:    m.Title,
	} {
		if value != "" {
			labels[key] = value
		}
	}
	if !m.Created.IsZero() {
		labels[LabelCreated] = m.Created.UTC().Format(time.RFC3339)
	}
	return labels
}

// maxEpoch is 9999-12-31T23:59:59Z, the last instant RFC 3339 can express
// with its four-digit year.
const maxEpoch = 253402300799

// CreatedFromEpoch parses a SOURCE_DATE_EPOCH value (decimal seconds since
// the Unix epoch, as printed by `date +%s` or `git log -1 --format=%ct`) into
// a UTC time for Meta.Created, so that rebuilding the same commit produces
// identical labels. An empty value (variable unset) yields the zero time and
// no error, which Labels omits. Anything else that is not plain ASCII digits
// (signs, spaces, fractions, hex), or a time past year 9999, is an error
// naming the value: the reproducible-builds specification asks tools to fail
// on a malformed value rather than silently use the current time.
func CreatedFromEpoch(env string) (time.Time, error) {
	if env == "" {
		return time.Time{}, nil
	}
	// Checked before parsing, since ParseInt accepts a sign and reports an
	// overflow before it reaches a stray character.
	if strings.TrimLeft(env, "0123456789") != "" {
		return time.Time{}, fmt.Errorf("invalid SOURCE_DATE_EPOCH %q: expected whole seconds since 1970-01-01T00:00:00Z as decimal digits, e.g. \"1700000000\"", env)
	}
	secs, err := strconv.ParseInt(env, 10, 64)
	if err != nil || secs > maxEpoch {
		return time.Time{}, fmt.Errorf("invalid SOURCE_DATE_EPOCH %q: must be at most %d (9999-12-31T23:59:59Z)", env, int64(maxEpoch))
	}
	return time.Unix(secs, 0).UTC(), nil
}
