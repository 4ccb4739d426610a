package vuln

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseSeverities(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"HIGH,CRITICAL", []string{"HIGH", "CRITICAL"}},
		{" critical , high ", []string{"CRITICAL", "HIGH"}},
		{"LOW,,LOW", []string{"LOW"}},
		{"unknown", []string{"UNKNOWN"}},
	} {
		got, err := ParseSeverities(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSeverities(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseSeveritiesRejectsUnknownAndEmpty(t *testing.T) {
	_, err := ParseSeverities("HIGH,SEVERE")
	var unknown *UnknownSeverityError
	if !errors.As(err, &unknown) || unknown.Severity != "SEVERE" {
		t.Fatalf("want an UnknownSeverityError for SEVERE, got %v", err)
	}
	if want := `severity list "HIGH,SEVERE": unknown severity "SEVERE" (use UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL)`; err.Error() != want {
		t.Errorf("message %q", err)
	}
	for _, in := range []string{"", " , ", ","} {
		if _, err := ParseSeverities(in); !errors.Is(err, ErrNoSeverity) {
			t.Errorf("ParseSeverities(%q) = %v, want ErrNoSeverity", in, err)
		}
	}
}
