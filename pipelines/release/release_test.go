package release

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func published() Manifest {
	s := Service{Name: "rust-core-engine", Image: "ghcr.io/acme/bot-core/rust-core-engine", IndexDigest: "sha256:" + strings.Repeat("0", 64),
		Platforms: map[string]string{"linux/arm64": "sha256:" + strings.Repeat("2", 64), "linux/amd64": "sha256:" + strings.Repeat("1", 64)},
		Reports:   map[string]Reports{}}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		r := ReportsFor(s.Name, p)
		r.Findings = map[string]int{"HIGH": 1, "LOW": 2}
		s.Reports[p] = r
	}
	s.RecordSignatures()
	return Manifest{Version: "v1.0.0", Created: time.Unix(1700000000, 0).UTC(), Registry: "ghcr.io/acme/bot-core", Published: true,
		Tags: []string{"v1.0.0", "latest"}, Platforms: []string{"linux/amd64", "linux/arm64"}, Services: []Service{s},
		Scan: &ScanPolicy{Severities: []string{"CRITICAL"}, DB: "directory"}, Signing: NewSigning("keyless", "https://fulcio.example", "https://rekor.example", false, true)}
}

func TestReportsForNamesOneFilePerImage(t *testing.T) {
	want := Reports{SARIF: "sarif/rust-core-engine_linux-arm64.sarif", Scan: "scan/rust-core-engine_linux-arm64.json", SBOM: "sbom/rust-core-engine_linux-arm64.spdx.json"}
	if got := ReportsFor("rust-core-engine", "linux/arm64"); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
}

func TestRecordSignaturesListsIndexThenPlatformsInOrder(t *testing.T) {
	s := published().Services[0]
	one, two := "sha256:"+strings.Repeat("1", 64), "sha256:"+strings.Repeat("2", 64)
	if want := []string{s.IndexDigest, one, two}; !reflect.DeepEqual(s.Signed, want) {
		t.Errorf("signed %v", s.Signed)
	}
	if want := []string{one, two}; !reflect.DeepEqual(s.Attested, want) {
		t.Errorf("attested %v", s.Attested)
	}
	want := []string{
		s.Image + ":sha256-" + strings.Repeat("0", 64) + ".sig",
		s.Image + ":sha256-" + strings.Repeat("1", 64) + ".sig",
		s.Image + ":sha256-" + strings.Repeat("2", 64) + ".sig",
		s.Image + ":sha256-" + strings.Repeat("1", 64) + ".att",
		s.Image + ":sha256-" + strings.Repeat("2", 64) + ".att",
	}
	if !reflect.DeepEqual(s.Signatures, want) {
		t.Errorf("signatures %v", s.Signatures)
	}
}

func TestNewSigningKeepsOnlyTheURLsThatApply(t *testing.T) {
	if NewSigning("", "f", "r", true, true) != nil {
		t.Error("unsigned release recorded a signing")
	}
	if s := NewSigning("key", "f", "r", true, true); s.FulcioURL != "" || s.RekorURL != "r" {
		t.Errorf("key signing: %+v", s)
	}
	if s := NewSigning("keyless", "f", "r", false, false); s.FulcioURL != "f" || s.RekorURL != "" || s.Tlog || s.SCT {
		t.Errorf("keyless without tlog: %+v", s)
	}
}

func TestJSONRoundTripsThroughParse(t *testing.T) {
	m := published()
	js, err := m.JSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(js)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip changed the manifest:\n%+v\n%+v", got, m)
	}
}

func TestParseRefusesIncompleteManifests(t *testing.T) {
	for _, in := range []string{`{`, `{"services":[]}`, `{"services":[{"name":"x","indexDigest":"md5:1","platforms":{"linux/amd64":"sha256:1"}}]}`,
		`{"services":[{"name":"x","indexDigest":"sha256:1"}]}`} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%s) succeeded", in)
		}
	}
}

func TestSummarySaysWhatHappened(t *testing.T) {
	s := published().Summary()
	for _, want := range []string{"## bot-core release v1.0.0", "Published to `ghcr.io/acme/bot-core` with tags: `v1.0.0`, `latest`",
		"| rust-core-engine | linux/amd64 | 1 HIGH, 2 LOW |", "Vulnerability gate: CRITICAL passed (database: directory)",
		"Signed keylessly (Fulcio https://fulcio.example; transparency log: skipped on request)"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	m := published()
	m.Signing, m.Published = nil, false
	if s := m.Summary(); !strings.Contains(s, "Built, not published") || strings.Contains(s, "Not signed") {
		t.Errorf("unpublished summary:\n%s", s)
	}
	m.Published = true
	if s := m.Summary(); !strings.Contains(s, "Not signed: published with --allow-unsigned") {
		t.Errorf("unsigned summary:\n%s", s)
	}
}
