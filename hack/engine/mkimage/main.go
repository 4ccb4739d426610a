// Command mkimage turns root filesystem tarballs (made by mmdebstrap) into a
// multi-platform OCI image layout that crane can push to the local mirror, or
// whose blobs the engine can load as its builtin Go SDK image.
//
//	mkimage -out DIR [-env K=V]... [-cmd ARG]... [-workdir D] \
//	        linux/amd64=rootfs.tar[,extra.tar] linux/arm64=rootfs.tar
//
// Layer order follows the comma-separated list; every image in the layout gets
// the same config apart from its platform.
package main

import (
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, " ") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var env, cmd list
	out := flag.String("out", "", "OCI layout directory to write (replaced)")
	workdir := flag.String("workdir", "", "working directory of the image")
	flag.Var(&env, "env", "K=V environment entry (repeatable)")
	flag.Var(&cmd, "cmd", "default command argument (repeatable)")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: mkimage -out DIR [-env K=V]... [-cmd ARG]... PLATFORM=LAYER.tar[,LAYER.tar]...")
		os.Exit(2)
	}
	if err := run(*out, *workdir, env, cmd, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(out, workdir string, env, cmd []string, specs []string) error {
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return err
	}
	for _, spec := range specs {
		plat, layers, ok := strings.Cut(spec, "=")
		if !ok {
			return fmt.Errorf("%q: want PLATFORM=LAYER.tar[,LAYER.tar]", spec)
		}
		platform, err := v1.ParsePlatform(plat)
		if err != nil {
			return err
		}
		img, err := image(*platform, strings.Split(layers, ","), workdir, env, cmd)
		if err != nil {
			return fmt.Errorf("%s: %w", plat, err)
		}
		if err := p.AppendImage(img, layout.WithPlatform(*platform)); err != nil {
			return err
		}
	}
	return nil
}

func image(platform v1.Platform, layerFiles []string, workdir string, env, cmd []string) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, f := range layerFiles {
		// BestSpeed: these layers are pushed to a registry on loopback, where
		// compression time matters more than bytes. Caching: the layer is
		// gzipped once for its digest and would be again for the layout; the
		// largest (the Rust toolchain) is ~0.5 GB compressed, memory we have.
		l, err := tarball.LayerFromFile(f, tarball.WithMediaType(types.OCILayer),
			tarball.WithCompressionLevel(gzip.BestSpeed), tarball.WithCompressedCaching)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = platform.OS, platform.Architecture, platform.Variant
	cf.Config.Env = env
	if !hasPath(env) {
		cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	}
	cf.Config.Cmd = cmd
	cf.Config.WorkingDir = workdir
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	// A fixed time keeps the image digest a function of its contents only.
	return mutate.CreatedAt(img, v1.Time{Time: time.Unix(0, 0).UTC()})
}

func hasPath(env []string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return true
		}
	}
	return false
}
