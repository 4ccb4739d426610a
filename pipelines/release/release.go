// Package release is the release manifest: what one run built and, when it
// published, where every service's images are. build-all writes it as
// release.json; the botcore CLI and the deploy step read it.
package release

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bot-core/delivery/pipelines/publish"
	"github.com/bot-core/delivery/pipelines/registry"
)

// States of a release, in the order a release goes through them; the state
// recorded is the last one reached.
const (
	// StateBuilt: built and scanned, nothing pushed.
	StateBuilt = "built"
	// StatePushed: every index is in the registry by digest; no tag moved.
	StatePushed = "pushed"
	// StateSigned: pushed and signed; no tag moved.
	StateSigned = "signed"
	// StateTagged: the tags name the release (a published release is done).
	StateTagged = "tagged"
	// StateRolledBack: the tag step failed and every tag it moved was put back.
	StateRolledBack = "rolled-back"
	// StatePartial: the tag step failed and some tags could not be put
	// back; Tagging says which ("left").
	StatePartial = "partial"
)

// Manifest describes one run of build-all.
type Manifest struct {
	// State is how far the release got (StateBuilt ... StatePartial).
	State string `json:"state"`
	// Error is why the release stopped; empty when it completed. A record
	// with an error is a failed release whatever its state.
	Error    string `json:"error,omitempty"`
	Version  string `json:"version,omitempty"`
	Revision string `json:"revision,omitempty"`
	// SourceURL is the repository named in the images' source label.
	SourceURL string    `json:"sourceUrl,omitempty"`
	Created   time.Time `json:"created"`
	Registry  string    `json:"registry,omitempty"`
	Published bool      `json:"published"`
	// Tags every service's index received (or would receive, unpublished).
	Tags      []string  `json:"tags"`
	Platforms []string  `json:"platforms"`
	Services  []Service `json:"services"`
	// StartCheck is the start-up gate: every image started and answered its
	// health check before anything was pushed; nil when it did not run.
	StartCheck *StartCheck `json:"startCheck,omitempty"`
	// Scan is the vulnerability policy every image passed; nil when not scanned.
	Scan *ScanPolicy `json:"scan,omitempty"`
	// Signing says how the published digests were signed; nil when nothing was.
	Signing *Signing `json:"signing,omitempty"`
	// Unsigned is true when the release was published unsigned on request
	// (build-all --allow-unsigned).
	Unsigned bool `json:"unsigned,omitempty"`
	// Tagging is what became of every tag of every service in the tag step.
	Tagging []publish.TagOutcome `json:"tagging,omitempty"`
	// Tool is the botcore binary that scanned, SBOM'd and signed; nil when
	// nothing was scanned.
	Tool *Tool `json:"tool,omitempty"`
	// ImagesLock is the sha256 of the images.lock the builds started from;
	// empty when the base images were named by tag.
	ImagesLock string `json:"imagesLock,omitempty"`
}

// RecordPublish records how far a publish got and, when it failed, why.
func (m *Manifest) RecordPublish(o publish.Outcome, err error) {
	m.State = map[string]string{"": StateBuilt, publish.StepPush: StatePushed,
		publish.StepSign: StateSigned, publish.StepTag: StateTagged}[o.Done]
	m.Tagging = o.Tags
	var te *publish.TagError
	if errors.As(err, &te) {
		m.State = StateRolledBack
		if len(te.Left()) > 0 {
			m.State = StatePartial
		}
	}
	m.Published = m.State == StateTagged
	if err != nil {
		m.Error = err.Error()
	}
}

// Check is the release's verdict: nil when it completed, otherwise one
// error saying how far it got and why it stopped.
func (m Manifest) Check() error {
	if m.Error == "" && m.State != StateRolledBack && m.State != StatePartial {
		return nil
	}
	what := "failed"
	switch m.State {
	case StateRolledBack:
		what = "failed and was rolled back: no tag names it"
	case StatePartial:
		what = "failed and could not be rolled back completely: see the tags left in release.json's tagging"
	case StatePushed, StateSigned:
		what = "failed after its images were " + m.State + " by digest: no tag names it"
	}
	return fmt.Errorf("release %s %s (state %s): %s", m.Title(), what, m.State, m.Error)
}

// Title names the release: its version, or its tags outside a release.
func (m Manifest) Title() string {
	if m.Version != "" {
		return m.Version
	}
	return strings.Join(m.Tags, ", ")
}

// ScanPolicy is the gate the images were held to.
type ScanPolicy struct {
	Severities    []string `json:"severities"`
	IgnoreUnfixed bool     `json:"ignoreUnfixed"`
	// DB is where the vulnerability database came from: "directory" (given,
	// offline) or "download" (fetched once into a cache volume).
	DB string `json:"db"`
	// DBRepositories are the mirrors it was downloaded from, in the order
	// tried; none: Trivy's own repositories.
	DBRepositories []string `json:"dbRepositories,omitempty"`
	// Failed names the images that did not pass ("service (platform): why");
	// empty when every image passed.
	Failed []string `json:"failed,omitempty"`
}

// Signing records how signatures and attestations were made, so a verifier
// knows what to expect: keyless certificates from FulcioURL, or a key, and
// whether the transparency log holds an entry (Tlog false was an explicit
// choice of the release, never a silent fallback).
type Signing struct {
	Mode      string `json:"mode"` // "keyless" or "key"
	FulcioURL string `json:"fulcioUrl,omitempty"`
	RekorURL  string `json:"rekorUrl,omitempty"`
	Tlog      bool   `json:"tlog"`
	// SCT false: keyless certificates were accepted without a certificate
	// transparency timestamp (a private Fulcio without a CT log).
	SCT bool `json:"sct"`
}

// Service is one service's multi-platform image.
type Service struct {
	Name string `json:"name"`
	// Image is the repository ("ghcr.io/acme/bot-core/rust-core-engine"),
	// empty when nothing was published.
	Image       string `json:"image,omitempty"`
	IndexDigest string `json:"indexDigest"`
	// Platforms maps "linux/arm64" to that platform's manifest digest.
	Platforms map[string]string `json:"platforms"`
	// Layout is the OCI image layout of the index inside the exported
	// directory ("images/<service>"), empty when not exported.
	Layout string `json:"layout,omitempty"`
	// Sizes maps each platform to its image's size: config plus compressed layers.
	Sizes map[string]int64 `json:"sizes,omitempty"`
	// Reports maps each platform to its scan and SBOM files inside the
	// exported directory.
	Reports map[string]Reports `json:"reports,omitempty"`
	// Signed lists the digests signed (the index, then each platform
	// manifest); Attested the platform manifests carrying attestations, and
	// Attestations their cosign predicate types (AttestationTypes), each
	// one on every attested manifest.
	Signed       []string `json:"signed,omitempty"`
	Attested     []string `json:"attested,omitempty"`
	Attestations []string `json:"attestations,omitempty"`
	// Signatures are the registry references holding them (cosign's
	// sha256-<hex>.sig and .att tags).
	Signatures []string `json:"signatures,omitempty"`
}

// StartCheck is how the start-up gate went.
type StartCheck struct {
	// Skipped is true when build-all was told --skip-start-check.
	Skipped bool `json:"skipped,omitempty"`
	// TimeoutSeconds is how long each image had to answer.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// Results maps "service linux/arm64" to what its check said.
	Results map[string]string `json:"results,omitempty"`
	// Failed lists the images that did not start, with why.
	Failed []string `json:"failed,omitempty"`
}

// Reports are one image's supply-chain outputs.
type Reports struct {
	SARIF string `json:"sarif"`
	Scan  string `json:"scan"`
	SBOM  string `json:"sbom"`
	// Findings counts vulnerabilities per severity, ignored ones excluded.
	Findings map[string]int `json:"findings"`
}

// ReportsFor names an image's report files inside the release directory,
// one per service and platform: sarif/rust-core-engine_linux-arm64.sarif, ...
func ReportsFor(service, platform string) Reports {
	base := service + "_" + strings.ReplaceAll(platform, "/", "-")
	return Reports{SARIF: "sarif/" + base + ".sarif", Scan: "scan/" + base + ".json", SBOM: "sbom/" + base + ".spdx.json"}
}

// NewSigning records how a release was signed; nil when mode is empty
// (unsigned). The Fulcio URL matters only keyless, the Rekor URL only with
// the transparency log.
func NewSigning(mode, fulcioURL, rekorURL string, tlog, sct bool) *Signing {
	if mode == "" {
		return nil
	}
	s := &Signing{Mode: mode, Tlog: tlog, SCT: sct}
	if mode == "keyless" {
		s.FulcioURL = fulcioURL
	}
	if tlog {
		s.RekorURL = rekorURL
	}
	return s
}

// AttestationTypes are the attestations build-all makes of every platform
// manifest, as cosign names their predicate types: the SPDX SBOM, the SLSA
// v1 provenance and the vulnerability scan.
var AttestationTypes = []string{"spdxjson", "slsaprovenance1", "vuln"}

// RecordSignatures lists what signing a published service produced: its
// index and every platform manifest signed, every platform manifest attested
// with each of AttestationTypes, and the registry tags cosign keeps them
// under (one .att tag holds all of a manifest's attestations).
func (s *Service) RecordSignatures() {
	s.Signed = append([]string{s.IndexDigest}, sortedValues(s.Platforms)...)
	s.Attested = sortedValues(s.Platforms)
	s.Attestations = slices.Clone(AttestationTypes)
	s.Signatures = nil
	for _, d := range s.Signed {
		s.Signatures = append(s.Signatures, s.Image+":"+registry.CosignTag(d, "sig"))
	}
	for _, d := range s.Attested {
		s.Signatures = append(s.Signatures, s.Image+":"+registry.CosignTag(d, "att"))
	}
}

// attestations says which attestations the platform manifests carry, as
// one sentence for the summary ("" when none were made).
func (m Manifest) attestations() string {
	var types []string
	for _, s := range m.Services {
		for _, t := range s.Attestations {
			if !slices.Contains(types, t) {
				types = append(types, t)
			}
		}
	}
	if len(types) == 0 {
		return ""
	}
	return " Every platform manifest carries signed attestations: " + codeList(types) + "."
}

// sortedValues lists a platform map's digests in platform order.
func sortedValues(m map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

// JSON renders the manifest with stable formatting.
func (m Manifest) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	return append(b, '\n'), err
}

// Parse reads a manifest and checks it is complete enough to act on.
func Parse(data []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("release manifest: %w", err)
	}
	if len(m.Services) == 0 {
		return Manifest{}, fmt.Errorf("release manifest lists no services")
	}
	for _, s := range m.Services {
		if !strings.HasPrefix(s.IndexDigest, "sha256:") || len(s.Platforms) == 0 {
			return Manifest{}, fmt.Errorf("release manifest: service %q has no index digest or platforms", s.Name)
		}
	}
	return m, nil
}

// Summary is the human-readable account for logs and the CI job summary.
func (m Manifest) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## bot-core release %s\n\n", m.Title())
	if err := m.Check(); err != nil {
		fmt.Fprintf(&b, "**Failed** (state `%s`): %s\n\n", m.State, m.Error)
		b.WriteString(m.tagTable())
	}
	switch {
	case m.Published:
		fmt.Fprintf(&b, "Published to `%s` with tags: %s\n\n", m.Registry, codeList(m.Tags))
	case m.Registry != "":
		fmt.Fprintf(&b, "Not published to `%s` (tags it was to get: %s)\n\n", m.Registry, codeList(m.Tags))
	default:
		fmt.Fprintf(&b, "Built, not published (tags it would get: %s)\n\n", codeList(m.Tags))
	}
	b.WriteString("| service | index digest | platforms |\n|---|---|---|\n")
	for _, s := range m.Services {
		var plats []string
		for p := range s.Platforms {
			plats = append(plats, p)
		}
		sort.Strings(plats)
		fmt.Fprintf(&b, "| %s | `%s` | %s |\n", s.Name, s.IndexDigest, strings.Join(plats, ", "))
	}
	if c := m.StartCheck; c != nil {
		switch {
		case c.Skipped:
			b.WriteString("\nStart-up check: skipped (--skip-start-check).\n")
		case len(c.Failed) > 0:
			fmt.Fprintf(&b, "\nStart-up check: failed for %d images.\n", len(c.Failed))
		default:
			fmt.Fprintf(&b, "\nStart-up check: every image started and answered its health check within %d s.\n", c.TimeoutSeconds)
		}
	}
	if m.Scan != nil {
		verdict := "passed"
		if len(m.Scan.Failed) > 0 {
			verdict = fmt.Sprintf("failed for %d images", len(m.Scan.Failed))
		}
		fmt.Fprintf(&b, "\nVulnerability gate: %s%s %s (database: %s).\n\n", strings.Join(m.Scan.Severities, ","),
			map[bool]string{true: " (fixed only)", false: ""}[m.Scan.IgnoreUnfixed], verdict, m.Scan.DB)
		b.WriteString("| service | platform | findings |\n|---|---|---|\n")
		for _, s := range m.Services {
			var plats []string
			for p := range s.Reports {
				plats = append(plats, p)
			}
			sort.Strings(plats)
			for _, p := range plats {
				fmt.Fprintf(&b, "| %s | %s | %s |\n", s.Name, p, findings(s.Reports[p].Findings))
			}
		}
	}
	if t := m.Tool; t != nil {
		fmt.Fprintf(&b, "\nTools: botcore %s (%s; sha256 `%s`), trivy %s, syft %s, cosign %s.\n", t.Version,
			map[string]string{"given": "given with --tool", "engine": "built in the engine"}[t.Source], t.SHA256,
			t.Libraries["trivy"], t.Libraries["syft"], t.Libraries["cosign"])
	}
	switch {
	case m.Signing != nil && m.Signing.Mode == "keyless":
		fmt.Fprintf(&b, "\nSigned keylessly (Fulcio %s; transparency log: %s).%s\n", m.Signing.FulcioURL, tlog(m.Signing), m.attestations())
	case m.Signing != nil:
		fmt.Fprintf(&b, "\nSigned with a key (transparency log: %s).%s\n", tlog(m.Signing), m.attestations())
	case m.Published:
		b.WriteString("\nNot signed: published with --allow-unsigned (no OIDC token and no cosign key); `botcore deploy` and `pull` refuse these images unless told --insecure-skip-verify.\n")
	}
	return b.String()
}

// tagTable lists the tags the tag step touched and what became of them.
func (m Manifest) tagTable() string {
	var b strings.Builder
	for _, o := range m.Tagging {
		if o.State == publish.TagNotMoved {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("| tag | before | now |\n|---|---|---|\n")
		}
		before := o.Before
		if before == "" {
			before = "(none)"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", o.Tag, before, o.State)
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

func codeList(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return "`" + strings.Join(xs, "`, `") + "`"
}

func tlog(s *Signing) string {
	if s.Tlog {
		return s.RekorURL
	}
	return "skipped on request"
}

// findings renders severity counts most severe first, "none" when empty.
func findings(counts map[string]int) string {
	var parts []string
	for _, sev := range []string{"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"} {
		if n := counts[sev]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, sev))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
