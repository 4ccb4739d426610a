// Package digests formats image digests for people. It is shared by the
// botcore commands, their internal packages and the pipeline packages that
// word digests in plans (cleanup), so a digest looks the same in every
// table, progress line and error.
package digests

import "strings"

// Short abbreviates a digest to its algorithm and the first 12 hex digits
// ("sha256:0123456789ab"), as many as docker shows of an image ID; anything
// that is not that long is returned as it is.
func Short(d string) string {
	if i := strings.Index(d, ":"); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}
