package release

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bot-core/delivery/pipelines/publish"
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
	m.Tool = &Tool{Source: "given", SHA256: "ab12", Version: "(devel)", Libraries: map[string]string{"trivy": "v0.67.2", "syft": "v1.33.0", "cosign": "v2.6.1"}}
	if s := m.Summary(); !strings.Contains(s, "Tools: botcore (devel) (given with --tool; sha256 `ab12`), trivy v0.67.2, syft v1.33.0, cosign v2.6.1.") {
		t.Errorf("summary does not name the tools:\n%s", s)
	}
	if js, _ := m.JSON(); !strings.Contains(string(js), `"tool": {`) {
		t.Errorf("release.json does not record the tool:\n%s", js)
	}
	m.Signing, m.Published, m.Registry = nil, false, ""
	if s := m.Summary(); !strings.Contains(s, "Built, not published") || strings.Contains(s, "Not signed") {
		t.Errorf("unpublished summary:\n%s", s)
	}
	m.Published, m.Registry = true, "ghcr.io/acme/bot-core"
	if s := m.Summary(); !strings.Contains(s, "Not signed: published with --allow-unsigned") {
		t.Errorf("unsigned summary:\n%s", s)
	}
}

// Each way a publish can end is recorded with its state, and Check fails
// every one that did not complete.
func TestRecordPublish(t *testing.T) {
	moved := publish.TagOutcome{Tag: "r/rust-core-engine:v1.0.0", Target: "sha256:new", State: publish.TagRestored}
	left := publish.TagOutcome{Tag: "r/rust-core-engine:1.0", Before: "sha256:old", Target: "sha256:new", State: publish.TagLeft, Error: "denied"}
	for _, tc := range []struct {
		name      string
		outcome   publish.Outcome
		err       error
		state     string
		failed    string // a phrase of Check's error; "" when it passes
		published bool
	}{
		{"completed", publish.Outcome{Done: publish.StepTag}, nil, StateTagged, "", true},
		{"push refused", publish.Outcome{}, errors.New("push refused"), StateBuilt, "failed (state built): push refused", false},
		{"signing failed", publish.Outcome{Done: publish.StepPush}, errors.New("fulcio unreachable"), StatePushed,
			"failed after its images were pushed by digest: no tag names it (state pushed): fulcio unreachable", false},
		{"version taken", publish.Outcome{Done: publish.StepSign}, errors.New("no tag was moved: taken"), StateSigned, "images were signed by digest", false},
		{"rolled back", publish.Outcome{Done: publish.StepSign, Tags: []publish.TagOutcome{moved}},
			&publish.TagError{Err: errors.New("tag x: 500"), Outcomes: []publish.TagOutcome{moved}}, StateRolledBack, "rolled back: no tag names it", false},
		{"partial", publish.Outcome{Done: publish.StepSign, Tags: []publish.TagOutcome{moved, left}},
			&publish.TagError{Err: errors.New("tag x: 500"), Outcomes: []publish.TagOutcome{moved, left}}, StatePartial, "could not be rolled back completely", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := published()
			m.Published = false
			m.RecordPublish(tc.outcome, tc.err)
			if m.State != tc.state || m.Published != tc.published {
				t.Errorf("state %q published %v, want %q %v", m.State, m.Published, tc.state, tc.published)
			}
			err := m.Check()
			if tc.failed == "" {
				if err != nil {
					t.Errorf("check: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.failed) || !strings.Contains(err.Error(), "release v1.0.0") {
				t.Errorf("check: %v, want it to say %q", err, tc.failed)
			}
			// The record survives JSON, and the summary says it failed.
			js, _ := m.JSON()
			back, perr := Parse(js)
			if perr != nil || back.Check() == nil || back.State != tc.state {
				t.Errorf("parsed back: %v, state %q, check %v", perr, back.State, back.Check())
			}
			sum := m.Summary()
			if !strings.Contains(sum, "**Failed** (state `"+tc.state+"`)") || strings.Contains(sum, "Published to") {
				t.Errorf("summary:\n%s", sum)
			}
			if tc.state == StatePartial && !strings.Contains(sum, "| `r/rust-core-engine:1.0` | `sha256:old` | left |") {
				t.Errorf("summary does not list the tag left:\n%s", sum)
			}
		})
	}
}

// A release record of a failed gate says which images failed.
func TestSummaryOfAFailedGate(t *testing.T) {
	m := published()
	m.Published, m.State, m.Error = false, StateBuilt, "vulnerability gate (CRITICAL) failed"
	m.Scan.Failed = []string{"rust-core-engine (linux/amd64): 1 CRITICAL"}
	sum := m.Summary()
	if !strings.Contains(sum, "Vulnerability gate: CRITICAL failed for 1 images") || m.Check() == nil {
		t.Errorf("summary:\n%s", sum)
	}
}

func TestSummarySaysHowTheStartUpCheckWent(t *testing.T) {
	for _, c := range []struct {
		check *StartCheck
		want  string
	}{
		{&StartCheck{TimeoutSeconds: 180, Results: map[string]string{"web linux/amd64": "healthy after 1s"}}, "Start-up check: every image started and answered its health check within 180 s."},
		{&StartCheck{Skipped: true}, "Start-up check: skipped (--skip-start-check)."},
		{&StartCheck{TimeoutSeconds: 60, Failed: []string{"web linux/arm64: it exited", "web linux/amd64: it exited"}}, "Start-up check: failed for 2 images."},
	} {
		m := published()
		m.StartCheck = c.check
		if s := m.Summary(); !strings.Contains(s, c.want) {
			t.Errorf("summary lacks %q:\n%s", c.want, s)
		}
		back, err := Parse(mustJSON(t, m))
		if err != nil || back.StartCheck == nil || back.StartCheck.Skipped != c.check.Skipped || len(back.StartCheck.Failed) != len(c.check.Failed) {
			t.Errorf("startCheck did not round-trip through release.json: %+v, %v", back.StartCheck, err)
		}
	}
	if s := published().Summary(); strings.Contains(s, "Start-up check") {
		t.Error("a record without a start-up check mentions one")
	}
}

func mustJSON(t *testing.T, m Manifest) []byte {
	t.Helper()
	b, err := m.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
