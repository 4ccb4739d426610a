package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"dagger/bot-core/internal/dagger"

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
// through this function's container; only the small JSON blobs are read.
// A single platform arrives as a bare image manifest and is wrapped in an
// index of one, so every release is an index.
func (m *BotCore) exportLayout(ctx context.Context, variants []*dagger.Container) (ociLayout, error) {
	tarball := variants[0].AsTarball(dagger.ContainerAsTarballOpts{
		PlatformVariants: variants[1:],
		// One algorithm for every layer, so digests do not depend on which
		// compressed blobs happen to be in the engine's cache.
		ForcedCompression: dagger.ImageLayerCompressionGzip,
	})
	dir := dag.Container().
		From(m.ToolsImage).
		WithMountedFile("/in/image.tar", tarball).
		WithExec([]string{"sh", "-euc", "mkdir -p /out && tar -xf /in/image.tar -C /out"}).
		Directory("/out")

	var root v1.IndexManifest
	if err := readJSON(ctx, dir, "index.json", &root); err != nil {
		return ociLayout{}, err
	}
	if len(root.Manifests) != 1 {
		return ociLayout{}, fmt.Errorf("OCI layout: want one entry in index.json, found %d", len(root.Manifests))
	}
	desc := root.Manifests[0]
	var idx v1.IndexManifest
	switch {
	case desc.MediaType.IsIndex():
		if err := readJSON(ctx, dir, blobPath(desc.Digest), &idx); err != nil {
			return ociLayout{}, err
		}
	case desc.MediaType.IsImage():
		var mf v1.Manifest
		if err := readJSON(ctx, dir, blobPath(desc.Digest), &mf); err != nil {
			return ociLayout{}, err
		}
		var cf v1.ConfigFile
		if err := readJSON(ctx, dir, blobPath(mf.Config.Digest), &cf); err != nil {
			return ociLayout{}, err
		}
		child := desc
		child.Platform = cf.Platform()
		child.Annotations = nil
		idx = v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{child}}
		raw, err := json.Marshal(idx)
		if err != nil {
			return ociLayout{}, err
		}
		sum := sha256.Sum256(raw)
		d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
		top, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{{
			MediaType: types.OCIImageIndex, Digest: d, Size: int64(len(raw)),
		}}})
		if err != nil {
			return ociLayout{}, err
		}
		dir = dir.WithNewFile(blobPath(d), string(raw)).WithNewFile("index.json", string(top))
		desc = v1.Descriptor{MediaType: types.OCIImageIndex, Digest: d}
	default:
		return ociLayout{}, fmt.Errorf("OCI layout: index.json points at %s, not an image or index", desc.MediaType)
	}

	out := ociLayout{Dir: dir, IndexDigest: desc.Digest.String(), Platforms: map[string]string{}, Sizes: map[string]int64{}}
	for _, d := range idx.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue // attestation manifests, not images
		}
		var mf v1.Manifest
		if err := readJSON(ctx, dir, blobPath(d.Digest), &mf); err != nil {
			return ociLayout{}, err
		}
		size := mf.Config.Size
		for _, l := range mf.Layers {
			size += l.Size
		}
		out.Platforms[d.Platform.String()] = d.Digest.String()
		out.Sizes[d.Platform.String()] = size
	}
	return out, nil
}

func blobPath(d v1.Hash) string { return "blobs/" + d.Algorithm + "/" + d.Hex }

func readJSON(ctx context.Context, dir *dagger.Directory, path string, v any) error {
	s, err := dir.File(path).Contents(ctx)
	if err != nil {
		return fmt.Errorf("OCI layout %s: %w", path, err)
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("OCI layout %s: %w", path, err)
	}
	return nil
}
