// Package reproducible compares a rebuilt image with a release's, layer by
// layer and in its config, to say where a rebuild that should be identical
// is not.
package reproducible

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Image is what a comparison reads of one platform's image.
type Image struct {
	Manifest v1.Manifest
	Config   v1.ConfigFile
}

// Diff says how a rebuild (got) differs from a release's image (want), one
// line per difference: which layers (by position, with the step that made
// each when the history says), then what in the config. Nothing means the
// two are the same image.
func Diff(want, got Image) []string {
	var out []string
	wl, gl := want.Manifest.Layers, got.Manifest.Layers
	n := max(len(wl), len(gl))
	steps := madeBy(got.Config)
	for i := range n {
		at := fmt.Sprintf("layer %d of %d", i+1, n)
		switch {
		case i >= len(wl):
			out = append(out, fmt.Sprintf("%s: only in the rebuild (%s)%s", at, short(gl[i].Digest), step(steps, i)))
		case i >= len(gl):
			out = append(out, fmt.Sprintf("%s: only in the release (%s)", at, short(wl[i].Digest)))
		case wl[i].Digest != gl[i].Digest:
			what := "other content"
			if w, g := diffID(want.Config, i), diffID(got.Config, i); w != "" && w == g {
				what = "the same content compressed differently"
			}
			out = append(out, fmt.Sprintf("%s differs: %s in the release, %s rebuilt, %s%s", at, short(wl[i].Digest), short(gl[i].Digest), what, step(steps, i)))
		}
	}
	wc, gc := want.Config, got.Config
	if !wc.Created.Equal(gc.Created.Time) {
		out = append(out, fmt.Sprintf("config: created %s in the release, %s rebuilt", wc.Created.UTC(), gc.Created.UTC()))
	}
	for _, k := range slices.Sorted(maps.Keys(union(wc.Config.Labels, gc.Config.Labels))) {
		if w, g := wc.Config.Labels[k], gc.Config.Labels[k]; w != g {
			out = append(out, fmt.Sprintf("config: label %s %q in the release, %q rebuilt", k, w, g))
		}
	}
	for _, f := range []struct {
		name string
		w, g []string
	}{{"env", wc.Config.Env, gc.Config.Env}, {"entrypoint", wc.Config.Entrypoint, gc.Config.Entrypoint}, {"cmd", wc.Config.Cmd, gc.Config.Cmd}} {
		if !slices.Equal(f.w, f.g) {
			out = append(out, fmt.Sprintf("config: %s %q in the release, %q rebuilt", f.name, f.w, f.g))
		}
	}
	if wc.Config.User != gc.Config.User || wc.Config.WorkingDir != gc.Config.WorkingDir {
		out = append(out, fmt.Sprintf("config: user/workdir %q %q in the release, %q %q rebuilt", wc.Config.User, wc.Config.WorkingDir, gc.Config.User, gc.Config.WorkingDir))
	}
	if len(out) == 0 && want.Manifest.Config.Digest != got.Manifest.Config.Digest {
		out = append(out, fmt.Sprintf("config: %s in the release, %s rebuilt (history or other fields)", short(want.Manifest.Config.Digest), short(got.Manifest.Config.Digest)))
	}
	return out
}

// madeBy is each layer's history entry's created_by, in layer order.
func madeBy(c v1.ConfigFile) []string {
	var steps []string
	for _, h := range c.History {
		if !h.EmptyLayer {
			steps = append(steps, h.CreatedBy)
		}
	}
	return steps
}

func step(steps []string, i int) string {
	if i >= len(steps) || strings.TrimSpace(steps[i]) == "" {
		return ""
	}
	s := strings.Join(strings.Fields(steps[i]), " ")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return "; made by: " + s
}

func diffID(c v1.ConfigFile, i int) string {
	if i < len(c.RootFS.DiffIDs) {
		return c.RootFS.DiffIDs[i].String()
	}
	return ""
}

func short(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Algorithm + ":" + h.Hex[:12]
	}
	return h.String()
}

func union(a, b map[string]string) map[string]string {
	u := maps.Clone(a)
	if u == nil {
		u = map[string]string{}
	}
	maps.Copy(u, b)
	return u
}
