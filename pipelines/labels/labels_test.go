package labels

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

const sha = "0123456789abcdef0123456789abcdef01234567"

func TestLabels(t *testing.T) {
	created := time.Date(2024, 5, 6, 9, 8, 7, 654321, time.FixedZone("CEST", 2*60*60))
	got := Labels(Meta{
		Version:  "1.2.3",
		Revision: sha,
		Source:   "https://github.com/bot-core/delivery",
		Title:    "delivery",
		Created:  created,
	})
	want := map[string]string{
		"org.opencontainers.image.version":  "1.2.3",
		"org.opencontainers.image.revision": sha,
		"org.opencontainers.image.source":   "https://github.com/bot-core/delivery",
		"org.opencontainers.image.title":    "delivery",
		"org.opencontainers.image.created":  "2024-05-06T07:08:07Z", // UTC, whole seconds
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Labels() = %v, want %v", got, want)
	}

	partial := Labels(Meta{Revision: sha})
	if want := map[string]string{LabelRevision: sha}; !reflect.DeepEqual(partial, want) {
		t.Errorf("Labels with only a revision = %v, want %v", partial, want)
	}

	empty := Labels(Meta{})
	if empty == nil || len(empty) != 0 {
		t.Errorf("Labels(Meta{}) = %#v, want an empty non-nil map", empty)
	}

	epoch := Labels(Meta{Created: time.Unix(0, 0)})
	if got := epoch[LabelCreated]; got != "1970-01-01T00:00:00Z" {
		t.Errorf("created for Unix 0 = %q, want 1970-01-01T00:00:00Z (a real time, not omitted)", got)
	}
}

func TestCreatedFromEpoch(t *testing.T) {
	ok := []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"0", time.Unix(0, 0).UTC()},
		{"1700000000", time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)},
		{"0001700000000", time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)},
		{"253402300799", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
	}
	for _, tt := range ok {
		got, err := CreatedFromEpoch(tt.in)
		if err != nil {
			t.Errorf("CreatedFromEpoch(%q) error: %v", tt.in, err)
			continue
		}
		if !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("CreatedFromEpoch(%q) = %v, want %v in UTC", tt.in, got, tt.want)
		}
	}
	if got, _ := CreatedFromEpoch(""); !got.IsZero() {
		t.Errorf("CreatedFromEpoch(\"\") = %v, want the zero time", got)
	}

	bad := []string{
		"abc", "-1", "+5", " 1700000000", "1700000000\n", "1700000000.5", "1e9", "0x10",
		"253402300800", "99999999999999999999999", "18700000000000000000A",
	}
	for _, in := range bad {
		_, err := CreatedFromEpoch(in)
		if err == nil {
			t.Errorf("CreatedFromEpoch(%q) = nil error, want one", in)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
			t.Errorf("CreatedFromEpoch(%q) error %q should name the variable and the value", in, err)
		}
	}
	// A stray character is reported as such even after more digits than
	// fit an int64, not as a number that is too large.
	if _, err := CreatedFromEpoch("18700000000000000000A"); err == nil || !strings.Contains(err.Error(), "decimal digits") {
		t.Errorf("CreatedFromEpoch with a trailing letter = %v, want it to ask for decimal digits", err)
	}
}
