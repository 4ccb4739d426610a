// Package release is the release manifest: what one run built and, when it
// published, where every service's images are. build-all writes it as
// release.json; the botcore CLI and the deploy step read it.
package release

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
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
	return b.String()
}

func codeList(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return "`" + strings.Join(xs, "`, `") + "`"
}
