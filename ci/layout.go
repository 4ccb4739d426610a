package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"dagger/bot-core/builder"
	"dagger/bot-core/internal/dagger"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ociLayout is one service's images as an OCI image layout directory in the
// engine, with what the release manifest needs to know about it.
type ociLayout struct {
	Dir         *dagger.Directory
	IndexDigest string
	Platforms   map[string]string // platform -> manifest digest
	Sizes       map[string]int64  // platform -> config + compressed layers
}

// normalizeSource is botcore-normalize (normalize/main.go), which takes
// out of an exported layout what depends on the engine and the time of the
// build. Compiled in the engine, like the prober.
//
//go:embed normalize/main.go
var normalizeSource string

// normalizer is botcore-normalize for the engine's own platform.
func (m *BotCore) normalizer(ctx context.Context) (*dagger.File, error) {
	p, err := dag.DefaultPlatform(ctx)
	if err != nil {
		return nil, err
	}
	return m.goTool("normalize", normalizeSource, p), nil
}

// exportLayout unpacks a service's platform containers into an OCI image
// layout inside the engine, so hundreds of megabytes of layers never pass
// through this function's container, and normalizes it for the source date
// (botcore-normalize): the same source then gives the same index digest
// on any engine. Only the small JSON blobs are read here.
//
// The containers come without the release's labels, which a second, small
// step writes into the configs: a new version of the same build reuses the
// unpacked and normalized layout and only rewrites its JSON blobs.
func (m *BotCore) exportLayout(ctx context.Context, unlabelled []*dagger.Container, epoch int, labels map[string]string) (ociLayout, error) {
	tarball := unlabelled[0].AsTarball(dagger.ContainerAsTarballOpts{
		PlatformVariants: unlabelled[1:],
		// One algorithm for every layer; the engine compresses its own
		// layers with Go's gzip, which is deterministic.
		ForcedCompression: dagger.ImageLayerCompressionGzip,
	})
	normalize, err := m.normalizer(ctx)
	if err != nil {
		return ociLayout{}, err
	}
	out := dag.Container().
		From(m.ToolsImage).
		WithMountedFile("/in/image.tar", tarball).
		WithMountedFile("/usr/local/bin/botcore-normalize", normalize).
		WithExec([]string{"sh", "-euc", `mkdir -p /out && tar -xf /in/image.tar -C /out && botcore-normalize /out "$1"`, "sh", strconv.Itoa(epoch)})
	if len(labels) > 0 {
		args := []string{"botcore-normalize", "-relabel", "/out", strconv.Itoa(epoch)}
		for _, k := range slices.Sorted(maps.Keys(labels)) {
			args = append(args, k+"="+labels[k])
		}
		out = dag.Container().
			From(m.ToolsImage).
			WithMountedDirectory("/out", out.Directory("/out")).
			WithMountedFile("/usr/local/bin/botcore-normalize", normalize).
			WithExec(args)
	}
	digest, err := out.Stdout(ctx)
	if err != nil {
		return ociLayout{}, fmt.Errorf("OCI layout: %w", err)
	}
	l := &layoutReader{dir: out.Directory("/out")}
	res := ociLayout{Dir: l.dir, IndexDigest: strings.TrimSpace(digest), Platforms: map[string]string{}, Sizes: map[string]int64{}}
	idx, err := v1.NewHash(res.IndexDigest)
	if err != nil {
		return ociLayout{}, fmt.Errorf("botcore-normalize printed %q: %w", digest, err)
	}
	var index v1.IndexManifest
	if _, err := l.readJSON(ctx, blobPath(idx), &index); err != nil {
		return ociLayout{}, err
	}
	for _, d := range index.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" {
			continue // attestation manifests, not images
		}
		var mf v1.Manifest
		if _, err := l.readJSON(ctx, blobPath(d.Digest), &mf); err != nil {
			return ociLayout{}, err
		}
		size := mf.Config.Size
		for _, layer := range mf.Layers {
			size += layer.Size
		}
		res.Platforms[d.Platform.String()] = d.Digest.String()
		res.Sizes[d.Platform.String()] = size
	}
	return res, nil
}

// goTool is a single-file, standard-library Go program compiled in the Go
// image for p: static, without a build id, so one source and one Go image
// give the same bytes.
func (m *BotCore) goTool(name, source string, p dagger.Platform) *dagger.File {
	return dag.Container().From(m.GoImage).
		WithEnvVariable("CGO_ENABLED", "0").
		WithEnvVariable("GOOS", "linux").
		WithEnvVariable("GOARCH", builder.Arch(p)).
		// The standard library only: nothing to download, no toolchain switch.
		WithEnvVariable("GOTOOLCHAIN", "local").
		WithEnvVariable("GOPROXY", "off").
		WithEnvVariable("GOFLAGS", "").
		WithMountedCache("/root/.cache/go-build", dag.CacheVolume("bot-core-probe-go-build")).
		WithNewFile("/src/main.go", source).
		WithWorkdir("/src").
		WithExec([]string{"go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", "/out/" + name, "main.go"}).
		File("/out/" + name)
}

// layoutReader reads an OCI layout's JSON blobs in the engine.
type layoutReader struct{ dir *dagger.Directory }

// readJSON decodes the file at path into v and returns its bytes as stored.
func (l *layoutReader) readJSON(ctx context.Context, path string, v any) ([]byte, error) {
	s, err := l.dir.File(path).Contents(ctx)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", path, err)
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", path, err)
	}
	return []byte(s), nil
}

func blobPath(d v1.Hash) string { return "blobs/" + d.Algorithm + "/" + d.Hex }
