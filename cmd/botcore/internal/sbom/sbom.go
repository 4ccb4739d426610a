// Package sbom catalogs one image opened by imagesrc with Syft, as a
// library, and encodes the result as an SPDX 2.3 JSON document.
//
// The image goes to Syft through stereoscope's image.New rather than
// Syft's own source providers, so the platform picked (and the image read)
// is the same as for `botcore scan`.
package sbom

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anchore/stereoscope/pkg/file"
	"github.com/anchore/stereoscope/pkg/image"
	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/format/spdxjson"
	"github.com/anchore/syft/syft/format/syftjson"
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

// CatalogKey names the catalog of img's layers in a catalog cache: a digest
// of everything a catalog depends on — Syft's version, the platform and the
// layers' diff IDs — and of nothing that names the image, so a relabelled
// image (a new version of unchanged sources) finds the catalog of the last.
func CatalogKey(img *imagesrc.Image) (string, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return "", fmt.Errorf("cannot read the config of %s: %w", img, err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "syft %s\n%s/%s/%s\n", SyftVersion(), cf.OS, cf.Architecture, cf.Variant)
	for _, d := range cf.RootFS.DiffIDs {
		fmt.Fprintln(h, d)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// catalogTTL is how long a cached catalog nobody used stays: long enough
// for the releases of a busy month, short enough that the cache does not
// grow with every change forever.
const catalogTTL = 30 * 24 * time.Hour

// Cached is Generate through the catalog cache dir: when dir holds the
// catalog of img's layers (CatalogKey) the SBOM is made from it without
// reading a layer (FromCatalog), else img is cataloged and the catalog
// stored. reused says which.
func Cached(ctx context.Context, img *imagesrc.Image, dir string, opts Options) (s *sbom.SBOM, reused bool, err error) {
	key, err := CatalogKey(img)
	if err != nil {
		return nil, false, err
	}
	path := filepath.Join(dir, key+".syft.json")
	if f, err := os.Open(path); err == nil {
		defer f.Close()
		s, err := FromCatalog(img, f, opts)
		if err != nil {
			return nil, false, fmt.Errorf("the cached catalog %s: %w (delete it to catalog again)", path, err)
		}
		now := time.Now()
		_ = os.Chtimes(path, now, now) // in use: not pruned
		return s, true, nil
	}
	if s, err = Generate(ctx, img, opts); err != nil {
		return nil, false, err
	}
	if err := store(dir, path, s); err != nil {
		return nil, false, fmt.Errorf("cannot keep the catalog in %s: %w", dir, err)
	}
	return s, false, nil
}

// store writes s's catalog to path through a temporary file renamed over
// it, so that concurrent runs never read half a catalog, and prunes the
// catalogs unused for catalogTTL.
func store(dir, path string, s *sbom.SBOM) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".catalog-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := syftjson.NewFormatEncoder().Encode(f, *s); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.syft.json"))
	for _, o := range old {
		if st, err := os.Stat(o); err == nil && time.Since(st.ModTime()) > catalogTTL {
			_ = os.Remove(o)
		}
	}
	return nil
}

// FromCatalog is the SBOM of img made from the catalog (Syft's JSON) of an
// image with the same layers: the packages and files are the catalog's,
// the document describes img (its name, version, digests, config and
// labels). A catalog of other layers is an error.
func FromCatalog(img *imagesrc.Image, catalog io.Reader, opts Options) (*sbom.SBOM, error) {
	if opts.Name == "" {
		opts.Name = DefaultName(img)
	}
	if opts.Version == "" {
		opts.Version = DefaultVersion(img)
	}
	s, _, _, err := syftjson.NewFormatDecoder().Decode(catalog)
	if err != nil {
		return nil, fmt.Errorf("not a Syft JSON catalog: %w", err)
	}
	was, ok := s.Source.Metadata.(source.ImageMetadata)
	if !ok {
		return nil, fmt.Errorf("the catalog is not of an image but of a %T", s.Source.Metadata)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("cannot read the config of %s: %w", img, err)
	}
	var have []string
	for _, l := range was.Layers {
		have = append(have, l.Digest)
	}
	var want []string
	for _, d := range cf.RootFS.DiffIDs {
		want = append(want, d.String())
	}
	if !slices.Equal(have, want) {
		return nil, fmt.Errorf("the catalog is of other layers than %s (%d layers, %d in the image): catalog the image itself, or its scan input", img, len(have), len(want))
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	configDigest, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	mediaType, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	// The layers (and so the size) are the catalog's: the same, checked
	// above. Everything naming the image is img's.
	now := was
	now.ID = configDigest.String()
	now.UserInput = img.Name
	now.ManifestDigest = img.Digest.String()
	now.MediaType = string(mediaType)
	now.Tags = img.RepoTags
	now.RepoDigests = img.RepoDigests
	now.RawManifest = rawManifest
	now.RawConfig = rawConfig
	now.Architecture, now.Variant, now.OS = cf.Architecture, cf.Variant, cf.OS
	now.Labels = cf.Config.Labels
	s.Source = source.Description{ID: s.Source.ID, Name: opts.Name, Version: opts.Version, Metadata: now}
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
