// Package vuln is the vulnerability gate's policy: which severities fail a
// release. The Dagger module and the botcore CLI read the same list, so a
// severity one accepts the other accepts too.
package vuln

import (
	"errors"
	"fmt"
	"strings"
)

// Severities are Trivy's severity names, lowest first.
var Severities = []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

// DefaultSeverities fail a release unless the caller says otherwise.
const DefaultSeverities = "HIGH,CRITICAL"

// ErrNoSeverity: the list named no severity at all, so nothing could fail the gate.
var ErrNoSeverity = errors.New("the severity list is empty: name at least one of LOW, MEDIUM, HIGH, CRITICAL")

// UnknownSeverityError names a severity Trivy does not have.
type UnknownSeverityError struct{ List, Severity string }

func (e *UnknownSeverityError) Error() string {
	return fmt.Sprintf("severity list %q: unknown severity %q (use %s)", e.List, e.Severity, strings.Join(Severities, ", "))
}

// ParseSeverities reads a comma-separated list such as "high, CRITICAL":
// upper-cased, blanks dropped, duplicates kept once, in the order given.
func ParseSeverities(list string) ([]string, error) {
	return Normalize(strings.Split(list, ","))
}

// Normalize checks a list already split (as a CLI flag parser splits it).
func Normalize(list []string) ([]string, error) {
	var out []string
	for _, s := range list {
		s = strings.ToUpper(strings.TrimSpace(s))
		if s == "" {
			continue
		}
		if !known(s) {
			return nil, &UnknownSeverityError{List: strings.Join(list, ","), Severity: s}
		}
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, ErrNoSeverity
	}
	return out, nil
}

func known(s string) bool { return contains(Severities, s) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
