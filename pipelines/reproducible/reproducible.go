// Package reproducible takes out of an exported image what depends on when
// and where it was exported rather than on what it holds, so the same source
// gives the same digests on any engine, any day.
//
// Dagger v0.19's exporter stamps each image config's created time and every
// history entry with the creation times of the engine's cache records (so
// an engine that built the layers earlier, or a fresh one, gives other
// configs), and lists an index's platforms in Go map order (so two exports
// of the same images give two index digests about half the time). Layers
// are left alone: the engine compresses its own with Go's gzip at a fixed
// level and no header time, and base layers keep the pinned base's blobs.
package reproducible

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// decode reads JSON into generic values, numbers kept as written, so
// re-encoding changes nothing but the fields set on purpose.
func decode(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// encode is canonical: encoding/json writes map keys sorted, so equal
// content is equal bytes.
func encode(v map[string]any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Config is the image config raw with its created time and every history
// entry's set to epoch.
func Config(raw []byte, epoch time.Time) ([]byte, error) {
	cfg, err := decode(raw)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	stamp := epoch.UTC().Format(time.RFC3339)
	cfg["created"] = stamp
	if hist, ok := cfg["history"].([]any); ok {
		for i, h := range hist {
			entry, ok := h.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("image config: history[%d] is not an object", i)
			}
			entry["created"] = stamp
		}
	}
	return encode(cfg)
}

// Descriptor is what a manifest or index says of a blob it points at.
type Descriptor struct {
	Digest string
	Size   int64
}

// Manifest is the image manifest raw pointing at config instead.
func Manifest(raw []byte, config Descriptor) ([]byte, error) {
	mf, err := decode(raw)
	if err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	c, ok := mf["config"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("image manifest: no config descriptor")
	}
	c["digest"] = config.Digest
	c["size"] = config.Size
	return encode(mf)
}

// Index is the image index raw with its manifests replaced (by digest, as
// renamed maps each old digest to its new descriptor) and in platform order.
func Index(raw []byte, renamed map[string]Descriptor) ([]byte, error) {
	idx, err := decode(raw)
	if err != nil {
		return nil, fmt.Errorf("image index: %w", err)
	}
	list, ok := idx["manifests"].([]any)
	if !ok {
		return nil, fmt.Errorf("image index: no manifests")
	}
	keys := make([]string, len(list))
	for i, m := range list {
		d, ok := m.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("image index: manifests[%d] is not an object", i)
		}
		if n, ok := renamed[fmt.Sprint(d["digest"])]; ok {
			d["digest"], d["size"] = n.Digest, n.Size
		}
		keys[i] = platformKey(d) + " " + fmt.Sprint(d["digest"])
	}
	order := make([]int, len(list))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return keys[order[a]] < keys[order[b]] })
	sorted := make([]any, len(list))
	for i, j := range order {
		sorted[i] = list[j]
	}
	idx["manifests"] = sorted
	return encode(idx)
}

func platformKey(d map[string]any) string {
	p, _ := d["platform"].(map[string]any)
	return fmt.Sprintf("%v/%v/%v", p["os"], p["architecture"], p["variant"])
}
