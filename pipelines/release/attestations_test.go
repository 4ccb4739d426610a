package release

import (
	"slices"
	"strings"
	"testing"
)

// Every attested platform manifest is recorded with the three predicate
// types build-all attests, and the summary says so.
func TestRecordSignaturesListsAttestations(t *testing.T) {
	s := Service{Name: "api", Image: "r.example/api", IndexDigest: "sha256:00",
		Platforms: map[string]string{"linux/arm64": "sha256:02", "linux/amd64": "sha256:01"}}
	s.RecordSignatures()
	if !slices.Equal(s.Attestations, []string{"spdxjson", "slsaprovenance1", "vuln"}) || !slices.Equal(s.Attested, []string{"sha256:01", "sha256:02"}) {
		t.Errorf("attested %v with %v", s.Attested, s.Attestations)
	}
	if len(s.Signatures) != 3+2 {
		t.Errorf("signatures %v: one .sig per signed digest, one .att per attested manifest", s.Signatures)
	}
	m := Manifest{Version: "v1.0.0", Published: true, Services: []Service{s}, Signing: NewSigning("key", "", "", false, true)}
	if sum := m.Summary(); !strings.Contains(sum, "Signed with a key (transparency log: skipped on request). Every platform manifest carries signed attestations: `spdxjson`, `slsaprovenance1`, `vuln`.") {
		t.Errorf("summary:\n%s", sum)
	}
}
