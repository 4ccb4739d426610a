// Command botcore-normalize rewrites an exported OCI image layout so that
// its digests depend on the images' content and the source date only, not
// on the engine that built them or the time it did: the same commit then
// gives the same index digest on any machine, any day.
//
//	botcore-normalize LAYOUT_DIR SOURCE_DATE_EPOCH
//
// It does what BuildKit's rewrite-timestamp export option does, which
// Dagger v0.19 does not expose:
//   - every file time in a layer later than the source date is clamped to
//     it. A build step that adds a file to an existing directory (a binary
//     to /usr/local/bin, a venv to /opt) leaves that directory's mtime at
//     the time of the step, which the layer records; such layers are
//     rewritten (tar headers only) and compressed again with Go's gzip at
//     its default level, which gives the same bytes for the same input.
//     Layers with nothing to clamp keep their blobs, so base layers keep
//     the digests their registry gave them.
//   - the config's created time and every history entry's are set to the
//     source date (the exporter writes its cache records' creation times),
//     and the history entries the exporter made up lose their created_by
//     (its cache records' descriptions; see exporterComment);
//   - the index lists its platforms in a fixed order (the exporter's order
//     is a Go map's), and index.json carries no export time.
//
// KEY=VALUE arguments after the date set those labels in every image's
// config. With -relabel only the labels are set: the layout was normalized
// before, without them, so a new version of the same build is relabelled
// without reading a layer again.
//
//	botcore-normalize [-relabel] LAYOUT_DIR SOURCE_DATE_EPOCH [KEY=VALUE...]
//
// It prints the new index digest. Standard library only: the module embeds
// this file and compiles it in the engine, like botcore-probe.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	relabel := flag.Bool("relabel", false, "only set the labels: the layout is normalized already")
	flag.Parse()
	args := flag.Args()
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: botcore-normalize [-relabel] LAYOUT_DIR SOURCE_DATE_EPOCH [KEY=VALUE...]")
		os.Exit(2)
	}
	secs, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || secs < 0 {
		fmt.Fprintf(os.Stderr, "botcore-normalize: %q is not seconds since 1970\n", args[1])
		os.Exit(2)
	}
	labels := map[string]string{}
	for _, kv := range args[2:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			fmt.Fprintf(os.Stderr, "botcore-normalize: label %q: give KEY=VALUE\n", kv)
			os.Exit(2)
		}
		labels[k] = v
	}
	d, err := normalize(args[0], time.Unix(secs, 0).UTC(), options{labels: labels, relabel: *relabel})
	if err != nil {
		fmt.Fprintf(os.Stderr, "botcore-normalize: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(d)
}

// options are what a run does besides normalizing.
type options struct {
	labels  map[string]string // set in every image config
	relabel bool              // labels only: layers and times were done before
}

// exporterComment marks the history entries BuildKit's exporter writes for
// layers the config has none for. Their created_by is the description of
// the engine's cache record holding the layer, which names whatever made
// that content first on this engine: a base layer that two images share
// says "pulled from" whichever of them the engine pulled first, which
// depends on the order parallel steps ran in.
const exporterComment = "buildkit.exporter.image.v0"

const (
	ociIndex    = "application/vnd.oci.image.index.v1+json"
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
)

type descriptor struct {
	Digest string
	Size   int64
}

// layout is an OCI layout directory being rewritten; blobs replaced are
// removed once nothing points at them.
type layout struct {
	dir     string
	epoch   time.Time
	layers  map[string]layerFix // old layer digest -> what replaced it
	garbage map[string]bool
	opts    options
}

type layerFix struct {
	blob   descriptor
	diffID string
}

func (l *layout) path(digest string) (string, error) {
	alg, hex, ok := strings.Cut(digest, ":")
	if !ok || alg != "sha256" || len(hex) != 64 || strings.ContainsAny(hex, "./") {
		return "", fmt.Errorf("%q is not a sha256 digest", digest)
	}
	return filepath.Join(l.dir, "blobs", alg, hex), nil
}

func (l *layout) read(digest string) ([]byte, error) {
	p, err := l.path(digest)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

// write stores raw as a blob and describes it.
func (l *layout) write(raw []byte) (descriptor, error) {
	sum := sha256.Sum256(raw)
	d := descriptor{Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(raw))}
	p, _ := l.path(d.Digest)
	delete(l.garbage, d.Digest)
	return d, os.WriteFile(p, raw, 0o644)
}

// replace drops the blob old in favour of raw, unless they are the same.
func (l *layout) replace(old string, raw []byte) (descriptor, error) {
	d, err := l.write(raw)
	if err == nil && d.Digest != old {
		l.garbage[old] = true
	}
	return d, err
}

func normalize(dir string, epoch time.Time, opts options) (string, error) {
	l := &layout{dir: dir, epoch: epoch, layers: map[string]layerFix{}, garbage: map[string]bool{}, opts: opts}
	rootRaw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return "", err
	}
	root, err := decode(rootRaw)
	if err != nil {
		return "", fmt.Errorf("index.json: %w", err)
	}
	entries, _ := root["manifests"].([]any)
	if len(entries) != 1 {
		return "", fmt.Errorf("index.json: want one entry, found %d", len(entries))
	}
	top, _ := entries[0].(map[string]any)
	topDigest, _ := top["digest"].(string)
	var index map[string]any
	switch top["mediaType"] {
	case ociIndex:
		raw, err := l.read(topDigest)
		if err != nil {
			return "", err
		}
		if index, err = decode(raw); err != nil {
			return "", fmt.Errorf("image index: %w", err)
		}
		l.garbage[topDigest] = true
	case ociManifest:
		// One platform arrives as a bare manifest: every release is an
		// index, so it is wrapped in one, with the config's platform.
		platform, err := l.platformOf(topDigest)
		if err != nil {
			return "", err
		}
		index = map[string]any{"schemaVersion": json.Number("2"), "mediaType": ociIndex, "manifests": []any{
			map[string]any{"mediaType": ociManifest, "digest": topDigest, "size": top["size"], "platform": platform},
		}}
	default:
		return "", fmt.Errorf("index.json points at %v, not an image or index", top["mediaType"])
	}
	list, _ := index["manifests"].([]any)
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return "", fmt.Errorf("image index: manifests[%d] is not an object", i)
		}
		if p, _ := m["platform"].(map[string]any); p == nil || p["os"] == "unknown" {
			continue // attestations, not images
		}
		d, err := l.manifest(m["digest"].(string))
		if err != nil {
			return "", err
		}
		m["digest"], m["size"] = d.Digest, d.Size
	}
	sort.SliceStable(list, func(a, b int) bool { return platformKey(list[a]) < platformKey(list[b]) })
	raw, err := encode(index)
	if err != nil {
		return "", err
	}
	idx, err := l.write(raw)
	if err != nil {
		return "", err
	}
	rootNew, err := encode(map[string]any{"schemaVersion": json.Number("2"), "mediaType": ociIndex,
		"manifests": []any{map[string]any{"mediaType": ociIndex, "digest": idx.Digest, "size": idx.Size}}})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), rootNew, 0o644); err != nil {
		return "", err
	}
	for d := range l.garbage {
		p, _ := l.path(d)
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	return idx.Digest, nil
}

func (l *layout) platformOf(manifest string) (map[string]any, error) {
	raw, err := l.read(manifest)
	if err != nil {
		return nil, err
	}
	mf, err := decode(raw)
	if err != nil {
		return nil, err
	}
	cfgDigest, _ := mf["config"].(map[string]any)["digest"].(string)
	raw, err = l.read(cfgDigest)
	if err != nil {
		return nil, err
	}
	cfg, err := decode(raw)
	if err != nil {
		return nil, err
	}
	p := map[string]any{"os": cfg["os"], "architecture": cfg["architecture"]}
	if v, ok := cfg["variant"]; ok {
		p["variant"] = v
	}
	return p, nil
}

// manifest rewrites one platform's manifest: its layers, then its config.
func (l *layout) manifest(digest string) (descriptor, error) {
	raw, err := l.read(digest)
	if err != nil {
		return descriptor{}, err
	}
	mf, err := decode(raw)
	if err != nil {
		return descriptor{}, fmt.Errorf("manifest %s: %w", digest, err)
	}
	cfgDesc, ok := mf["config"].(map[string]any)
	if !ok {
		return descriptor{}, fmt.Errorf("manifest %s: no config", digest)
	}
	cfgDigest, _ := cfgDesc["digest"].(string)
	cfgRaw, err := l.read(cfgDigest)
	if err != nil {
		return descriptor{}, err
	}
	cfg, err := decode(cfgRaw)
	if err != nil {
		return descriptor{}, fmt.Errorf("config %s: %w", cfgDigest, err)
	}
	layers, _ := mf["layers"].([]any)
	rootfs, _ := cfg["rootfs"].(map[string]any)
	diffIDs, _ := rootfs["diff_ids"].([]any)
	if len(diffIDs) != len(layers) {
		return descriptor{}, fmt.Errorf("manifest %s: %d layers, config %s: %d diff IDs", digest, len(layers), cfgDigest, len(diffIDs))
	}
	for i, e := range layers {
		if l.opts.relabel {
			break
		}
		ld, _ := e.(map[string]any)
		old, _ := ld["digest"].(string)
		fix, err := l.layer(old, fmt.Sprint(ld["mediaType"]))
		if err != nil {
			return descriptor{}, fmt.Errorf("layer %s: %w", old, err)
		}
		if fix.blob.Digest != "" {
			ld["digest"], ld["size"] = fix.blob.Digest, fix.blob.Size
			diffIDs[i] = fix.diffID
		}
	}
	if len(l.opts.labels) > 0 {
		conf, _ := cfg["config"].(map[string]any)
		if conf == nil {
			conf = map[string]any{}
			cfg["config"] = conf
		}
		labels, _ := conf["Labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
			conf["Labels"] = labels
		}
		for k, v := range l.opts.labels {
			labels[k] = v
		}
	}
	stamp := l.epoch.Format(time.RFC3339)
	cfg["created"] = stamp
	if hist, ok := cfg["history"].([]any); ok {
		for _, h := range hist {
			if entry, ok := h.(map[string]any); ok {
				entry["created"] = stamp
				if entry["comment"] == exporterComment {
					delete(entry, "created_by")
				}
			}
		}
	}
	cfgNew, err := encode(cfg)
	if err != nil {
		return descriptor{}, err
	}
	c, err := l.replace(cfgDigest, cfgNew)
	if err != nil {
		return descriptor{}, err
	}
	cfgDesc["digest"], cfgDesc["size"] = c.Digest, c.Size
	mfNew, err := encode(mf)
	if err != nil {
		return descriptor{}, err
	}
	return l.replace(digest, mfNew)
}

// layer clamps a gzip layer's file times to the source date; a zero fix
// means nothing needed it and the blob stays.
func (l *layout) layer(digest, mediaType string) (layerFix, error) {
	if fix, ok := l.layers[digest]; ok {
		return fix, nil
	}
	if !strings.HasSuffix(mediaType, "tar+gzip") && !strings.HasSuffix(mediaType, "tar.gzip") {
		return layerFix{}, nil // only gzip layers are exported here; others are left alone
	}
	p, err := l.path(digest)
	if err != nil {
		return layerFix{}, err
	}
	late, err := hasLateTimes(p, l.epoch)
	if err != nil || !late {
		l.layers[digest] = layerFix{}
		return layerFix{}, err
	}
	fix, err := l.rewrite(p)
	if err != nil {
		return layerFix{}, err
	}
	l.layers[digest] = fix
	if fix.blob.Digest != digest {
		l.garbage[digest] = true
	}
	delete(l.garbage, fix.blob.Digest)
	return fix, nil
}

func hasLateTimes(path string, epoch time.Time) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return false, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if h.ModTime.After(epoch) || h.AccessTime.After(epoch) || h.ChangeTime.After(epoch) {
			return true, nil
		}
	}
}

// rewrite writes the layer at path again with clamped times, through a
// temporary file, and returns the new blob and diff ID.
func (l *layout) rewrite(path string) (layerFix, error) {
	in, err := os.Open(path)
	if err != nil {
		return layerFix{}, err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return layerFix{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".normalize-*")
	if err != nil {
		return layerFix{}, err
	}
	defer os.Remove(tmp.Name())
	blobSum, diffSum := sha256.New(), sha256.New()
	counted := &countWriter{w: io.MultiWriter(tmp, blobSum)}
	zw, err := gzip.NewWriterLevel(counted, gzip.DefaultCompression)
	if err != nil {
		return layerFix{}, err
	}
	tw := tar.NewWriter(io.MultiWriter(zw, diffSum))
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return layerFix{}, err
		}
		if err := tw.WriteHeader(clamped(h, l.epoch)); err != nil {
			return layerFix{}, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return layerFix{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return layerFix{}, err
	}
	if err := zw.Close(); err != nil {
		return layerFix{}, err
	}
	if err := tmp.Close(); err != nil {
		return layerFix{}, err
	}
	fix := layerFix{
		blob:   descriptor{Digest: "sha256:" + hex.EncodeToString(blobSum.Sum(nil)), Size: counted.n},
		diffID: "sha256:" + hex.EncodeToString(diffSum.Sum(nil)),
	}
	dst, _ := l.path(fix.blob.Digest)
	return fix, os.Rename(tmp.Name(), dst)
}

// clamped is a new header with h's fields and its times no later than
// epoch. A new header rather than h itself, as archive/tar asks: the
// reader's PAX records for times, sizes and names would otherwise win over
// the fields; the others (extended attributes such as file capabilities)
// are kept.
func clamped(h *tar.Header, epoch time.Time) *tar.Header {
	clamp := func(t time.Time) time.Time {
		if t.After(epoch) {
			return epoch
		}
		return t
	}
	n := &tar.Header{
		Typeflag: h.Typeflag, Name: h.Name, Linkname: h.Linkname, Size: h.Size, Mode: h.Mode,
		Uid: h.Uid, Gid: h.Gid, Uname: h.Uname, Gname: h.Gname,
		ModTime: clamp(h.ModTime), AccessTime: clamp(h.AccessTime), ChangeTime: clamp(h.ChangeTime),
		Devmajor: h.Devmajor, Devminor: h.Devminor, Format: h.Format,
	}
	for k, v := range h.PAXRecords {
		switch k {
		case "mtime", "atime", "ctime", "size", "path", "linkpath", "uid", "gid", "uname", "gname":
		default:
			if n.PAXRecords == nil {
				n.PAXRecords = map[string]string{}
			}
			n.PAXRecords[k] = v
		}
	}
	return n
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// decode reads JSON into generic values, numbers kept as written, so that
// encoding again changes only what was set on purpose.
func decode(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// encode is canonical: map keys sorted, no HTML escaping, no newline.
func encode(v map[string]any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func platformKey(e any) string {
	m, _ := e.(map[string]any)
	p, _ := m["platform"].(map[string]any)
	return fmt.Sprintf("%v/%v/%v %v", p["os"], p["architecture"], p["variant"], m["digest"])
}
