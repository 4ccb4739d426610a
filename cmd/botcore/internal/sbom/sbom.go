// Package sbom catalogs one image opened by imagesrc with Syft, as a
// library, and encodes the result as an SPDX 2.3 JSON document.
//
// The image goes to Syft through stereoscope's image.New rather than
// Syft's own source providers, so the platform picked (and the image read)
// is the same as for `botcore scan`.
package sbom

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/anchore/stereoscope/pkg/file"
	"github.com/anchore/stereoscope/pkg/image"
	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/format/spdxjson"
	"github.com/anchore/syft/syft/sbom"
	"github.com/anchore/syft/syft/source"
	"github.com/anchore/syft/syft/source/stereoscopesource"
	// Syft's RPM cataloger reads rpmdb.sqlite through database/sql and
	// fails every catalog without the "sqlite" driver registered.
	_ "modernc.org/sqlite"

	"github.com/bot-core/delivery/cmd/botcore/internal/imagesrc"
)

// SPDXVersion is the SPDX version the documents are written in.
const SPDXVersion = "2.3"

// Options configure Generate.
type Options struct {
	// Name and Version describe the image in the document (its name, the
	// root package). Name defaults to DefaultName.
	Name    string
	Version string
}

// DefaultName is the document name for img: its repository when the source
// names one, else the layout directory's or tarball's base name (botcore
// pull writes a service's layout to DIR/<service>).
func DefaultName(img *imagesrc.Image) string {
	if img.Repository != "" {
		return img.Repository
	}
	base := filepath.Base(filepath.Clean(img.Name))
	for _, ext := range []string{".tar.gz", ".tgz", ".tar"} {
		base = strings.TrimSuffix(base, ext)
	}
	return base
}

// DefaultVersion is the tag the image was found under, else its digest.
func DefaultVersion(img *imagesrc.Image) string {
	if img.Tag != "" {
		return img.Tag
	}
	if img.IndexDigest != nil {
		return img.IndexDigest.String()
	}
	return img.Digest.String()
}

// Generate catalogs the packages and files of img.
func Generate(ctx context.Context, img *imagesrc.Image, opts Options) (*sbom.SBOM, error) {
	if opts.Name == "" {
		opts.Name = DefaultName(img)
	}
	if opts.Version == "" {
		opts.Version = DefaultVersion(img)
	}
	tmp := file.NewTempDirGenerator("botcore-sbom")
	contentDir, err := tmp.NewDirectory("image")
	if err != nil {
		_ = tmp.Cleanup()
		return nil, err
	}
	md := []image.AdditionalMetadata{image.WithManifestDigest(img.Digest.String())}
	if raw, err := img.RawManifest(); err == nil {
		md = append(md, image.WithManifest(raw))
	}
	if len(img.RepoTags) > 0 {
		md = append(md, image.WithTags(img.RepoTags...))
	}
	if len(img.RepoDigests) > 0 {
		md = append(md, image.WithRepoDigests(img.RepoDigests...))
	}
	// image.Cleanup removes tmp and everything below it.
	simg := image.New(img.Image, tmp, contentDir, md...)
	if err := simg.Read(ctx); err != nil {
		_ = simg.Cleanup()
		return nil, fmt.Errorf("cannot read the layers of %s: %w", img, err)
	}
	src := stereoscopesource.New(simg, stereoscopesource.ImageConfig{
		Reference: img.Name,
		Alias:     source.Alias{Name: opts.Name, Version: opts.Version},
	})
	defer src.Close()

	s, err := syft.CreateSBOM(ctx, src, syft.DefaultCreateSBOMConfig())
	if err != nil {
		return nil, fmt.Errorf("syft could not catalog %s: %w", img, err)
	}
	return s, nil
}

// WriteSPDX writes s as an indented SPDX 2.3 JSON document.
func WriteSPDX(w io.Writer, s *sbom.SBOM) error {
	enc, err := spdxjson.NewFormatEncoderWithConfig(spdxjson.EncoderConfig{Version: SPDXVersion, Pretty: true})
	if err != nil {
		return err
	}
	return enc.Encode(w, *s)
}

// SyftVersion is the version of the Syft module built in.
func SyftVersion() string {
	return syft.DefaultCreateSBOMConfig().ToolVersion
}
