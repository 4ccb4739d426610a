// Package release is the release manifest: what one run built and, when it
// published, where every service's images are. build-all writes it as
// release.json; the botcore CLI and the deploy step read it.
package release

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bot-core/delivery/pipelines/registry"
)

// Manifest describes one run of build-all.
type Manifest struct {
	Version   string    `json:"version,omitempty"`
	Revision  string    `json:"revision,omitempty"`
	Created   time.Time `json:"created"`
	Registry  string    `json:"registry,omitempty"`
	Published bool      `json:"published"`
	// Tags every service's index received (or would receive, unpublished).
	Tags      []string  `json:"tags"`
	Platforms []string  `json:"platforms"`
	Services  []Service `json:"services"`
	// Scan is the vulnerability policy every image passed; nil when not scanned.
	Scan *ScanPolicy `json:"scan,omitempty"`
	// Signing says how the published digests were signed; nil when nothing was.
	Signing *Signing `json:"signing,omitempty"`
	// Unsigned is true when the release was published unsigned on request
	// (build-all --allow-unsigned).
	Unsigned bool `json:"unsigned,omitempty"`
}

// ScanPolicy is the gate the images were held to.
type ScanPolicy struct {
	Severities    []string `json:"severities"`
	IgnoreUnfixed bool     `json:"ignoreUnfixed"`
	// DB is where the vulnerability database came from: "directory" (given,
	// offline) or "download" (trivy's repository, kept in a cache volume).
	DB string `json:"db"`
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
	// manifest); Attested the platform manifests carrying an SPDX attestation.
	Signed   []string `json:"signed,omitempty"`
	Attested []string `json:"attested,omitempty"`
	// Signatures are the registry references holding them (cosign's
	// sha256-<hex>.sig and .att tags).
	Signatures []string `json:"signatures,omitempty"`
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

// RecordSignatures lists what signing a published service produced: its
// index and every platform manifest signed, every platform manifest attested,
// and the registry tags cosign keeps them under.
func (s *Service) RecordSignatures() {
	s.Signed = append([]string{s.IndexDigest}, sortedValues(s.Platforms)...)
	s.Attested = sortedValues(s.Platforms)
	s.Signatures = nil
	for _, d := range s.Signed {
		s.Signatures = append(s.Signatures, s.Image+":"+registry.CosignTag(d, "sig"))
	}
	for _, d := range s.Attested {
		s.Signatures = append(s.Signatures, s.Image+":"+registry.CosignTag(d, "att"))
	}
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
	title := m.Version
	if title == "" {
		title = strings.Join(m.Tags, ", ")
	}
	fmt.Fprintf(&b, "## bot-core release %s\n\n", title)
	if m.Published {
		fmt.Fprintf(&b, "Published to `%s` with tags: %s\n\n", m.Registry, codeList(m.Tags))
	} else {
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
	if m.Scan != nil {
		fmt.Fprintf(&b, "\nVulnerability gate: %s%s passed (database: %s).\n\n", strings.Join(m.Scan.Severities, ","),
			map[bool]string{true: " (fixed only)", false: ""}[m.Scan.IgnoreUnfixed], m.Scan.DB)
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
	switch {
	case m.Signing != nil && m.Signing.Mode == "keyless":
		fmt.Fprintf(&b, "\nSigned keylessly (Fulcio %s; transparency log: %s).\n", m.Signing.FulcioURL, tlog(m.Signing))
	case m.Signing != nil:
		fmt.Fprintf(&b, "\nSigned with a key (transparency log: %s).\n", tlog(m.Signing))
	case m.Published:
		b.WriteString("\nNot signed: published with --allow-unsigned (no OIDC token and no cosign key); `botcore deploy` and `pull` refuse these images unless told --insecure-skip-verify.\n")
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
