package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var epoch = time.Unix(1700000000, 0).UTC()

type entry struct {
	name  string
	mtime time.Time
	xattr string
}

// gzLayer is a gzip tar of entries, compressed at a level of its own (as a
// registry's blob would be) so that a rewrite shows in the digest.
func gzLayer(t *testing.T, level int, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, level)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o755, ModTime: e.mtime, Typeflag: tar.TypeDir, Format: tar.FormatPAX}
		if e.xattr != "" {
			h.Typeflag, h.Size = tar.TypeReg, 3
			h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": e.xattr}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.xattr != "" {
			tw.Write([]byte("bin"))
		}
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

func sha(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

func gunzip(t *testing.T, b []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.ReadFrom(zr)
	return out.Bytes()
}

// writeLayout is a two-platform layout as the exporter writes it: a base
// layer, a layer made "now" (the build's time), configs with export times,
// and the platforms in the given order.
//
// The base layer's history entry is the exporter's own, with the engine's
// description of where the layer came from (pulledFrom).
func writeLayout(t *testing.T, now time.Time, armFirst bool, pulledFrom string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
	put := func(b []byte) map[string]any {
		d := sha(b)
		os.WriteFile(filepath.Join(dir, "blobs", "sha256", d[7:]), b, 0o644)
		return map[string]any{"digest": d, "size": len(b)}
	}
	base := gzLayer(t, gzip.BestSpeed, entry{"usr/", time.Unix(0, 0), ""}, entry{"usr/bin/ping", time.Unix(0, 0), "\x01\x00\x00\x02"})
	var manifests []any
	for _, arch := range []string{"amd64", "arm64"} {
		built := gzLayer(t, gzip.BestSpeed, entry{"usr/local/bin/", now, ""}, entry{"app/", epoch, ""})
		bd, ld := put(base), put(built)
		cfg, _ := json.Marshal(map[string]any{"architecture": arch, "os": "linux", "created": now,
			"history": []any{map[string]any{"created": now.Add(-time.Hour), "created_by": "pulled from " + pulledFrom, "comment": exporterComment}, map[string]any{"created": now, "created_by": "COPY app /app", "comment": "buildkit.dockerfile.v0"}},
			"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{sha(gunzip(t, base)), sha(gunzip(t, built))}},
			"config":  map[string]any{"Labels": map[string]string{"org.opencontainers.image.created": "2023-11-14T22:13:20Z"}}})
		cd := put(cfg)
		cd["mediaType"] = "application/vnd.oci.image.config.v1+json"
		for _, l := range []map[string]any{bd, ld} {
			l["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
		}
		mf, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociManifest, "config": cd, "layers": []any{bd, ld}})
		md := put(mf)
		md["mediaType"] = ociManifest
		md["platform"] = map[string]any{"os": "linux", "architecture": arch}
		manifests = append(manifests, md)
	}
	if armFirst {
		manifests[0], manifests[1] = manifests[1], manifests[0]
	}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociIndex, "manifests": manifests})
	id := put(idx)
	id["mediaType"] = ociIndex
	id["annotations"] = map[string]string{"org.opencontainers.image.created": now.Format(time.RFC3339)}
	root, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{id}})
	os.WriteFile(filepath.Join(dir, "index.json"), root, 0o644)
	return dir
}

func TestTwoBuildsAtOtherTimesNormalizeToOneDigest(t *testing.T) {
	// The second engine pulled the base layer for another image first.
	a := writeLayout(t, time.Date(2026, 12, 2, 6, 11, 7, 123456789, time.UTC), false, "docker.io/library/node:20-slim")
	b := writeLayout(t, time.Date(2026, 12, 2, 6, 18, 19, 0, time.UTC), true, "docker.io/library/node:20")
	da, err := normalize(a, epoch, options{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := normalize(b, epoch, options{})
	if err != nil {
		t.Fatal(err)
	}
	if da != db {
		t.Fatalf("same content, other build times and platform order: %s and %s", da, db)
	}
	again, err := normalize(a, epoch, options{})
	if err != nil || again != da {
		t.Fatalf("normalizing twice changes the digest: %s, then %s (%v)", da, again, err)
	}

	// What is left is a consistent layout: every blob referenced, no other.
	l := &layout{dir: a}
	var root struct{ Manifests []struct{ Digest string } }
	raw, _ := os.ReadFile(filepath.Join(a, "index.json"))
	json.Unmarshal(raw, &root)
	refs := map[string]bool{root.Manifests[0].Digest: true}
	idxRaw, _ := l.read(root.Manifests[0].Digest)
	var idx struct {
		Manifests []struct {
			Digest   string
			Platform struct{ Architecture string }
		}
	}
	json.Unmarshal(idxRaw, &idx)
	if len(idx.Manifests) != 2 || idx.Manifests[0].Platform.Architecture != "amd64" {
		t.Fatalf("index not in platform order: %s", idxRaw)
	}
	for _, m := range idx.Manifests {
		refs[m.Digest] = true
		mfRaw, _ := l.read(m.Digest)
		var mf struct {
			Config struct{ Digest string }
			Layers []struct{ Digest string }
		}
		json.Unmarshal(mfRaw, &mf)
		refs[mf.Config.Digest] = true
		cfgRaw, _ := l.read(mf.Config.Digest)
		var cfg struct {
			Created time.Time
			History []struct {
				Created   time.Time
				CreatedBy string `json:"created_by"`
			}
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
		json.Unmarshal(cfgRaw, &cfg)
		if !cfg.Created.Equal(epoch) || !cfg.History[0].Created.Equal(epoch) || !cfg.History[1].Created.Equal(epoch) {
			t.Errorf("config times not the source date: %s", cfgRaw)
		}
		if cfg.History[0].CreatedBy != "" || cfg.History[1].CreatedBy != "COPY app /app" {
			t.Errorf("history: the exporter's description should go, the build's step stay: %s", cfgRaw)
		}
		for i, ld := range mf.Layers {
			refs[ld.Digest] = true
			blob, err := l.read(ld.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if sha(blob) != ld.Digest || sha(gunzip(t, blob)) != cfg.RootFS.DiffIDs[i] {
				t.Errorf("layer %d: blob or diff ID does not match", i)
			}
			tr := tar.NewReader(bytes.NewReader(gunzip(t, blob)))
			for {
				h, err := tr.Next()
				if err != nil {
					break
				}
				if h.ModTime.After(epoch) {
					t.Errorf("layer %d: %s still dated %s", i, h.Name, h.ModTime)
				}
				if h.Name == "usr/bin/ping" && h.PAXRecords["SCHILY.xattr.security.capability"] != "\x01\x00\x00\x02" {
					t.Errorf("the file capability was lost: %v", h.PAXRecords)
				}
			}
		}
		if base := gzLayer(t, gzip.BestSpeed, entry{"usr/", time.Unix(0, 0), ""}, entry{"usr/bin/ping", time.Unix(0, 0), "\x01\x00\x00\x02"}); mf.Layers[0].Digest != sha(base) {
			t.Error("the base layer, with nothing to clamp, was rewritten")
		}
	}
	files, _ := os.ReadDir(filepath.Join(a, "blobs", "sha256"))
	for _, f := range files {
		if !refs["sha256:"+f.Name()] {
			t.Errorf("blob %s is left behind unreferenced", f.Name())
		}
	}
}

// A new version of the same build is the normalized layout of the
// unlabelled images, relabelled: the same digest as labelling in one pass,
// with the labels in every config and the unlabelled blobs gone.
func TestRelabelGivesWhatOnePassGives(t *testing.T) {
	labels := map[string]string{"org.opencontainers.image.version": "v1.0.1", "org.opencontainers.image.title": "web"}
	one := writeLayout(t, time.Date(2026, 12, 2, 6, 11, 7, 0, time.UTC), false, "docker.io/library/node:20-slim")
	want, err := normalize(one, epoch, options{labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	two := writeLayout(t, time.Date(2026, 12, 2, 7, 1, 2, 0, time.UTC), true, "docker.io/library/node:20-slim")
	unlabelled, err := normalize(two, epoch, options{})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(filepath.Join(two, "blobs", "sha256"))
	got, err := normalize(two, epoch, options{labels: labels, relabel: true})
	if err != nil {
		t.Fatal(err)
	}
	if got != want || got == unlabelled {
		t.Fatalf("relabelled %s, labelled in one pass %s (unlabelled %s)", got, want, unlabelled)
	}
	after, _ := os.ReadDir(filepath.Join(two, "blobs", "sha256"))
	if len(after) != len(before) {
		t.Errorf("relabelling left %d blobs, the unlabelled layout had %d: the replaced ones stay behind", len(after), len(before))
	}
	l := &layout{dir: two}
	idxRaw, _ := l.read(got)
	var idx struct{ Manifests []struct{ Digest string } }
	json.Unmarshal(idxRaw, &idx)
	for _, m := range idx.Manifests {
		mfRaw, _ := l.read(m.Digest)
		var mf struct{ Config struct{ Digest string } }
		json.Unmarshal(mfRaw, &mf)
		cfgRaw, _ := l.read(mf.Config.Digest)
		var cfg struct {
			Config struct{ Labels map[string]string }
		}
		json.Unmarshal(cfgRaw, &cfg)
		if cfg.Config.Labels["org.opencontainers.image.version"] != "v1.0.1" || cfg.Config.Labels["org.opencontainers.image.title"] != "web" {
			t.Errorf("config %s labels %v", mf.Config.Digest, cfg.Config.Labels)
		}
	}
}

func TestBadInputIsOneError(t *testing.T) {
	dir := t.TempDir()
	if _, err := normalize(dir, epoch, options{}); err == nil {
		t.Error("no index.json passed")
	}
	os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"manifests":[{"mediaType":"text/plain","digest":"sha256:00"}]}`), 0o644)
	if _, err := normalize(dir, epoch, options{}); err == nil {
		t.Error("an index.json pointing at no image passed")
	}
}
