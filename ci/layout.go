package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/reproducible"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ociLayout is one service's images as an OCI image layout directory in the
// engine, with what the release manifest needs to know about it.
type ociLayout struct {
	Dir         *dagger.Directory
	IndexDigest string
	Platforms   map[string]string // platform -> manifest digest
	Sizes       map[string]int64  // platform -> config + compressed layers
}

// exportLayout unpacks a service's platform containers into an OCI image
// layout inside the engine, so hundreds of megabytes of layers never pass
// through this function's container; only the small JSON blobs are read,
// and rewritten (pipelines/reproducible) so that the digests depend on the
// images' content and epoch, not on when or in which engine they were
// exported. A single platform arrives as a bare image manifest and is
// wrapped in an index of one, so every release is an index.
func (m *BotCore) exportLayout(ctx context.Context, variants []*dagger.Container, epoch int) (ociLayout, error) {
	tarball := variants[0].AsTarball(dagger.ContainerAsTarballOpts{
		PlatformVariants: variants[1:],
		// One algorithm for every layer, so digests do not depend on which
		// compressed blobs happen to be in the engine's cache.
		ForcedCompression: dagger.ImageLayerCompressionGzip,
	})
	l := &layoutWriter{dir: dag.Container().
		From(m.ToolsImage).
		WithMountedFile("/in/image.tar", tarball).
		WithExec([]string{"sh", "-euc", "mkdir -p /out && tar -xf /in/image.tar -C /out"}).
		Directory("/out")}

	var root v1.IndexManifest
	if err := l.readJSON(ctx, "index.json", &root); err != nil {
		return ociLayout{}, err
	}
	if len(root.Manifests) != 1 {
		return ociLayout{}, fmt.Errorf("OCI layout: want one entry in index.json, found %d", len(root.Manifests))
	}
	desc := root.Manifests[0]
	var indexRaw []byte
	switch {
	case desc.MediaType.IsIndex():
		raw, err := l.take(ctx, desc.Digest)
		if err != nil {
			return ociLayout{}, err
		}
		indexRaw = raw
	case desc.MediaType.IsImage():
		var mf v1.Manifest
		if err := l.readJSON(ctx, blobPath(desc.Digest), &mf); err != nil {
			return ociLayout{}, err
		}
		var cf v1.ConfigFile
		if err := l.readJSON(ctx, blobPath(mf.Config.Digest), &cf); err != nil {
			return ociLayout{}, err
		}
		child := desc
		child.Platform = cf.Platform()
		child.Annotations = nil
		raw, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{child}})
		if err != nil {
			return ociLayout{}, err
		}
		indexRaw = raw
	default:
		return ociLayout{}, fmt.Errorf("OCI layout: index.json points at %s, not an image or index", desc.MediaType)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(indexRaw, &idx); err != nil {
		return ociLayout{}, fmt.Errorf("OCI layout: image index: %w", err)
	}

	stamp := time.Unix(int64(epoch), 0)
	out := ociLayout{Platforms: map[string]string{}, Sizes: map[string]int64{}}
	renamed := map[string]reproducible.Descriptor{}
	for _, d := range idx.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue // attestation manifests, not images
		}
		mfRaw, err := l.take(ctx, d.Digest)
		if err != nil {
			return ociLayout{}, err
		}
		var mf v1.Manifest
		if err := json.Unmarshal(mfRaw, &mf); err != nil {
			return ociLayout{}, fmt.Errorf("OCI layout %s: %w", blobPath(d.Digest), err)
		}
		cfgRaw, err := l.take(ctx, mf.Config.Digest)
		if err != nil {
			return ociLayout{}, err
		}
		cfg, err := reproducible.Config(cfgRaw, stamp)
		if err != nil {
			return ociLayout{}, err
		}
		cfgDesc := l.put(cfg)
		mfNew, err := reproducible.Manifest(mfRaw, cfgDesc)
		if err != nil {
			return ociLayout{}, err
		}
		renamed[d.Digest.String()] = l.put(mfNew)
		size := cfgDesc.Size
		for _, layer := range mf.Layers {
			size += layer.Size
		}
		out.Platforms[d.Platform.String()] = renamed[d.Digest.String()].Digest
		out.Sizes[d.Platform.String()] = size
	}
	indexNew, err := reproducible.Index(indexRaw, renamed)
	if err != nil {
		return ociLayout{}, err
	}
	top := l.put(indexNew)
	// The exporter's index.json carries the export's time; this one only
	// points at the index.
	rootNew, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": types.OCIImageIndex,
		"manifests": []map[string]any{{"mediaType": types.OCIImageIndex, "digest": top.Digest, "size": top.Size}}})
	if err != nil {
		return ociLayout{}, err
	}
	out.Dir = l.dir.WithNewFile("index.json", string(rootNew))
	out.IndexDigest = top.Digest
	return out, nil
}

// layoutWriter edits an OCI layout's JSON blobs in the engine.
type layoutWriter struct{ dir *dagger.Directory }

// take reads a blob and removes it: it is about to be replaced.
func (l *layoutWriter) take(ctx context.Context, d v1.Hash) ([]byte, error) {
	s, err := l.dir.File(blobPath(d)).Contents(ctx)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", blobPath(d), err)
	}
	l.dir = l.dir.WithoutFile(blobPath(d))
	return []byte(s), nil
}

// put adds raw as a blob and describes it.
func (l *layoutWriter) put(raw []byte) reproducible.Descriptor {
	sum := sha256.Sum256(raw)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	l.dir = l.dir.WithNewFile(blobPath(h), string(raw))
	return reproducible.Descriptor{Digest: h.String(), Size: int64(len(raw))}
}

func (l *layoutWriter) readJSON(ctx context.Context, path string, v any) error {
	s, err := l.dir.File(path).Contents(ctx)
	if err != nil {
		return fmt.Errorf("OCI layout %s: %w", path, err)
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("OCI layout %s: %w", path, err)
	}
	return nil
}

func blobPath(d v1.Hash) string { return "blobs/" + d.Algorithm + "/" + d.Hex }
