// Package reproducible compares a rebuilt image with a release's, layer by
// layer and in its config, to say where a rebuild that should be identical
// is not.
package reproducible

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Image is what a comparison reads of one platform's image.
type Image struct {
	Manifest v1.Manifest
	Config   v1.ConfigFile
	// RawConfig is the config blob as stored, when the caller has it: a
	// field v1.ConfigFile does not know can then be named too.
	RawConfig []byte
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
		fields := configFields(want, got)
		if len(fields) == 0 {
			fields = []string{"the same fields, written differently"}
		}
		for _, f := range fields {
			out = append(out, fmt.Sprintf("config %s in the release, %s rebuilt: %s", short(want.Manifest.Config.Digest), short(got.Manifest.Config.Digest), f))
		}
	}
	return out
}

// maxFieldDiffs bounds what configFields reports: a config rewritten from
// end to end says so in a few lines, not hundreds.
const maxFieldDiffs = 8

// configFields names, by JSON path, the config fields that differ, for what
// the comparisons above do not look at (history, platform, fields of other
// tools).
func configFields(want, got Image) []string {
	w, g := configTree(want), configTree(got)
	var out []string
	jsonDiff("", w, g, &out)
	if len(out) > maxFieldDiffs {
		out = append(out[:maxFieldDiffs], fmt.Sprintf("and %d more", len(out)-maxFieldDiffs))
	}
	return out
}

func configTree(img Image) any {
	raw := img.RawConfig
	if raw == nil {
		raw, _ = json.Marshal(img.Config)
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return nil
	}
	return tree
}

func jsonDiff(path string, w, g any, out *[]string) {
	switch wv := w.(type) {
	case map[string]any:
		if gv, ok := g.(map[string]any); ok {
			for _, k := range slices.Sorted(maps.Keys(union(wv, gv))) {
				jsonDiff(path+"."+k, wv[k], gv[k], out)
			}
			return
		}
	case []any:
		if gv, ok := g.([]any); ok {
			for i := range max(len(wv), len(gv)) {
				var a, b any
				if i < len(wv) {
					a = wv[i]
				}
				if i < len(gv) {
					b = gv[i]
				}
				jsonDiff(fmt.Sprintf("%s[%d]", path, i), a, b, out)
			}
			return
		}
	}
	if !reflect.DeepEqual(w, g) {
		*out = append(*out, fmt.Sprintf("%s is %s in the release, %s rebuilt", strings.TrimPrefix(path, "."), brief(w), brief(g)))
	}
}

func brief(v any) string {
	if v == nil {
		return "absent"
	}
	raw, _ := json.Marshal(v)
	s := string(raw)
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
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

func union[V any](a, b map[string]V) map[string]V {
	u := maps.Clone(a)
	if u == nil {
		u = map[string]V{}
	}
	maps.Copy(u, b)
	return u
}
