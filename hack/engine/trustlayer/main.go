// Command trustlayer gives every image of an OCI layout the machine's own CA
// certificates, as one more layer, the way a company's base images carry the
// CA of its TLS-inspecting proxy:
//
//	trustlayer -certs /usr/local/share/ca-certificates -from LAYOUT -out DIR
//
// Each certificate file goes to /usr/local/share/ca-certificates/ (so a later
// update-ca-certificates in the image keeps it) and is appended to the
// image's /etc/ssl/certs/ca-certificates.crt, which is created when the image
// has none (the official images these stand in for ship Debian's bundle).
//
// Why not the engine's own custom-CA support: given CA files, the engine
// installs them around every exec, running update-ca-certificates inside the
// container before and after the command. That costs seconds per exec on
// amd64 and two minutes per exec of an arm64 image under QEMU.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	bundlePath = "etc/ssl/certs/ca-certificates.crt"
	certDir    = "usr/local/share/ca-certificates"
)

func main() {
	certs := flag.String("certs", "/usr/local/share/ca-certificates", "directory of PEM CA certificates (*.crt) to add")
	from := flag.String("from", "", "OCI layout to read")
	out := flag.String("out", "", "OCI layout to write (replaced)")
	flag.Parse()
	if *from == "" || *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: trustlayer [-certs DIR] -from LAYOUT -out DIR")
		os.Exit(2)
	}
	if err := run(*certs, *from, *out); err != nil {
		fmt.Fprintln(os.Stderr, "trustlayer:", err)
		os.Exit(1)
	}
}

type cert struct {
	name string
	pem  []byte
}

func run(certDirOnHost, from, out string) error {
	certs, err := readCerts(certDirOnHost)
	if err != nil {
		return err
	}
	src, err := layout.ImageIndexFromPath(from)
	if err != nil {
		return err
	}
	im, err := src.IndexManifest()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	dst, err := layout.Write(out, empty.Index)
	if err != nil {
		return err
	}
	for _, desc := range im.Manifests {
		if !desc.MediaType.IsImage() {
			return fmt.Errorf("%s: %s is a %s; want images at the top of index.json", from, desc.Digest, desc.MediaType)
		}
		img, err := src.Image(desc.Digest)
		if err != nil {
			return err
		}
		trusted, err := withCerts(img, certs)
		if err != nil {
			return fmt.Errorf("%s %s: %w", from, desc.Platform, err)
		}
		var opts []layout.Option
		if desc.Platform != nil {
			opts = append(opts, layout.WithPlatform(*desc.Platform))
		}
		if err := dst.AppendImage(trusted, opts...); err != nil {
			return err
		}
	}
	return nil
}

func readCerts(dir string) ([]cert, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.crt"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var certs []cert
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if !bytes.Contains(b, []byte("-----BEGIN CERTIFICATE-----")) {
			return nil, fmt.Errorf("%s is not a PEM certificate", f)
		}
		certs = append(certs, cert{name: filepath.Base(f), pem: bytes.TrimSpace(b)})
	}
	return certs, nil
}

// withCerts appends the layer holding the certificates (and the image's
// bundle with them added) and keeps the config, history aside, as it was.
func withCerts(img v1.Image, certs []cert) (v1.Image, error) {
	bundle, err := currentFile(img, bundlePath)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A fixed time keeps the layer, hence the image digest, a function of the
	// certificates and the image only.
	mtime := time.Unix(0, 0).UTC()
	dirs := []string{"etc", "etc/ssl", "etc/ssl/certs", "usr", "usr/local", "usr/local/share", certDir}
	files := map[string][]byte{}
	var b []byte
	if len(bundle) > 0 {
		b = append(bytes.TrimRight(bundle, "\n"), '\n')
	}
	for _, c := range certs {
		files[path.Join(certDir, c.name)] = append(append([]byte{}, c.pem...), '\n')
		if !bytes.Contains(bundle, c.pem) {
			b = append(append(b, c.pem...), '\n')
		}
	}
	files[bundlePath] = b
	sort.Strings(dirs)
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime}); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: mtime}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(files[n]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(img, layer)
}

// currentFile is the content of name in the image's flattened filesystem, or
// nil when the image does not have it.
func currentFile(img v1.Image, name string) ([]byte, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimPrefix(path.Clean(h.Name), "/") != name {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("/%s is not a regular file in the image", name)
		}
		return io.ReadAll(tr)
	}
}
