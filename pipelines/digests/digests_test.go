package digests

import "testing"

func TestShort(t *testing.T) {
	for in, want := range map[string]string{
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": "sha256:0123456789ab",
		"sha512:0123456789abcdef": "sha512:0123456789ab",
		"sha256:0123456789ab":     "sha256:0123456789ab", // already short
		"sha256:abc":              "sha256:abc",
		"not-a-digest":            "not-a-digest",
		"":                        "",
	} {
		if got := Short(in); got != want {
			t.Errorf("Short(%q) = %q, want %q", in, got, want)
		}
	}
}
