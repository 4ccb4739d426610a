// Package imagesrc opens the one image a botcore tool command works on,
// from a registry reference, an OCI image layout or an image tarball, and
// picks one platform out of a multi-platform index.
//
// The scanners (Trivy, Syft) each have their own image loaders, but those
// differ in how they pick a platform (Trivy takes the first manifest of a
// layout) and in which inputs they accept; opening the image here once
// gives both the same image for the same command line.
package imagesrc

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// DefaultPlatform is picked from a multi-platform image when no platform is
// asked for: the platform CI runners and most servers have.
var DefaultPlatform = v1.Platform{OS: "linux", Architecture: "amd64"}

// Annotations that name an image inside an OCI layout: the OCI tag, and the
// full reference as containerd (and botcore pull) writes it.
const (
	annotationRefName       = "org.opencontainers.image.ref.name"
	annotationContainerdRef = "io.containerd.image.name"
)

// ErrNoSource is a Source that names no image at all.
var ErrNoSource = errors.New("no image given: a registry reference, an OCI layout or a tarball is needed")

// SourceKind is the kind of file an InputError is about.
type SourceKind int

// The file inputs.
const (
	Layout  SourceKind = iota + 1 // an OCI image layout directory
	Tarball                       // docker save output, or an OCI layout as a tar
)

// InputError says a layout or tarball path is not what Source says it is.
// The caller knows how the path was given, so it adds what to pass instead.
type InputError struct {
	Kind    SourceKind
	Path    string
	Problem string // e.g. "is not a directory"
	Err     error  // the reader's own complaint, if any
}

func (e *InputError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s %s (%v)", e.Path, e.Problem, e.Err)
	}
	return e.Path + " " + e.Problem
}

func (e *InputError) Unwrap() error { return e.Err }

// PlatformError says the source has no image of the platform asked for (or,
// none asked for, of DefaultPlatform).
type PlatformError struct {
	// Source is how the source is called: "the OCI layout DIR", "the
	// tarball FILE", or the reference.
	Source string
	Want   string
	// Have are the platforms the source does have.
	Have []string
	// Single: the source is one image, not an index, so asking for no
	// platform at all takes it.
	Single bool
}

func (e *PlatformError) Error() string {
	if e.Single && len(e.Have) == 1 {
		return fmt.Sprintf("%s holds a %s image, not %s", e.Source, e.Have[0], e.Want)
	}
	return fmt.Sprintf("%s has no %s image (it has %s)", e.Source, e.Want, strings.Join(e.Have, ", "))
}

// Source says where the image is; exactly one of Ref, Layout and Tarball is
// set.
type Source struct {
	Ref     name.Reference
	Layout  string
	Tarball string
	// Platform is the platform to pick; nil means DefaultPlatform, or the
	// only platform the image has.
	Platform *v1.Platform
	// Remote are the options of registry calls (context, auth, transport).
	Remote []remote.Option
}

// Image is the opened image of one platform.
type Image struct {
	v1.Image
	// Name is how reports name the image: the reference, or the layout or
	// tarball path.
	Name string
	// Repository and Tag name the image when its source knows them (a
	// registry reference, the ref annotations of a layout, the RepoTags of a
	// docker save tarball), else they are empty.
	Repository string
	Tag        string
	// Digest is the manifest digest of the picked image.
	Digest v1.Hash
	// IndexDigest is the digest of the index it was picked from, if any.
	IndexDigest *v1.Hash
	Platform    v1.Platform
	// RepoTags and RepoDigests are in docker's form (repo:tag, repo@digest).
	RepoTags    []string
	RepoDigests []string

	cleanup func() error
}

// Close releases what Open unpacked to disk; the image is unreadable
// afterwards.
func (i *Image) Close() error {
	if i == nil || i.cleanup == nil {
		return nil
	}
	return i.cleanup()
}

// String is the name and platform, for progress lines and errors.
func (i *Image) String() string {
	return fmt.Sprintf("%s (%s)", i.Name, i.Platform.String())
}

// Reference is the image's registry reference when its source names one
// (repository:tag, else repository@digest), else Name: what reports about
// the image should call it, wherever it was read from.
func (i *Image) Reference() string {
	switch {
	case i.Repository == "":
		return i.Name
	case i.Tag != "":
		return i.Repository + ":" + i.Tag
	case i.IndexDigest != nil:
		return i.Repository + "@" + i.IndexDigest.String()
	}
	return i.Repository + "@" + i.Digest.String()
}

// ParsePlatform parses "os/arch[/variant]"; "" gives nil (no preference).
func ParsePlatform(s string) (*v1.Platform, error) {
	if s == "" {
		return nil, nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return nil, fmt.Errorf("invalid platform %q: give OS/ARCH[/VARIANT] such as linux/amd64 or linux/arm64", s)
	}
	return p, nil
}

// Open opens the image src names.
func Open(ctx context.Context, src Source) (*Image, error) {
	switch {
	case src.Ref != nil:
		return openRemote(ctx, src)
	case src.Layout != "":
		return openLayout(src)
	case src.Tarball != "":
		return openTarball(src)
	}
	return nil, ErrNoSource
}

// candidate is one platform image found in an index.
type candidate struct {
	desc     v1.Descriptor
	platform v1.Platform
	parent   v1.ImageIndex
	index    *v1.Hash
	refName  string // OCI or containerd reference annotation of the top entry
}

func openRemote(ctx context.Context, src Source) (*Image, error) {
	opts := append([]remote.Option{remote.WithContext(ctx)}, src.Remote...)
	desc, err := remote.Get(src.Ref, opts...)
	if err != nil {
		return nil, err
	}
	out := &Image{Name: src.Ref.String(), Repository: src.Ref.Context().Name()}
	if t, ok := src.Ref.(name.Tag); ok {
		out.Tag = t.TagStr()
		out.RepoTags = []string{src.Ref.Context().Name() + ":" + t.TagStr()}
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		cands, err := candidates(idx, nil, "")
		if err != nil {
			return nil, err
		}
		c, err := pick(cands, src.Platform, src.Ref.String())
		if err != nil {
			return nil, err
		}
		img, err := c.parent.Image(c.desc.Digest)
		if err != nil {
			return nil, err
		}
		out.Image, out.Digest, out.Platform = img, c.desc.Digest, c.platform
		out.IndexDigest = &desc.Digest
	} else {
		img, err := desc.Image()
		if err != nil {
			return nil, err
		}
		p, err := configPlatform(img)
		if err != nil {
			return nil, err
		}
		if src.Platform != nil && !matches(*src.Platform, p) {
			return nil, &PlatformError{Source: src.Ref.String(), Want: src.Platform.String(), Have: []string{p.String()}, Single: true}
		}
		out.Image, out.Digest, out.Platform = img, desc.Digest, p
	}
	// The digest of what the tag pointed to (the index for a multi-platform
	// image) is the one a registry knows the image by.
	out.RepoDigests = []string{src.Ref.Context().Name() + "@" + desc.Digest.String()}
	return out, nil
}

func openLayout(src Source) (*Image, error) {
	if st, err := os.Stat(src.Layout); err != nil || !st.IsDir() {
		return nil, &InputError{Kind: Layout, Path: src.Layout, Problem: "is not a directory"}
	}
	if _, err := layout.FromPath(src.Layout); err != nil {
		return nil, &InputError{Kind: Layout, Path: src.Layout, Problem: "is not an OCI image layout", Err: err}
	}
	return openLayoutAt(src.Layout, src.Layout, "the OCI layout "+src.Layout, src.Platform)
}

// openLayoutAt opens the layout in dir; name and where are how the image
// and the layout are called in the result and in errors.
func openLayoutAt(dir, imgName, where string, platform *v1.Platform) (*Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%s is not an OCI image layout: %w", where, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("cannot read the index of %s: %w", where, err)
	}
	cands, err := candidates(idx, nil, "")
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", where, err)
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("%s holds no image", where)
	}
	c, err := pick(cands, platform, where)
	if err != nil {
		return nil, err
	}
	img, err := c.parent.Image(c.desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("cannot read image %s of %s: %w", c.desc.Digest, where, err)
	}
	out := &Image{Image: img, Name: imgName, Digest: c.desc.Digest, IndexDigest: c.index, Platform: c.platform}
	if c.refName != "" {
		if ref, err := name.ParseReference(c.refName); err == nil && strings.Contains(c.refName, "/") {
			out.Repository = ref.Context().Name()
			if t, ok := ref.(name.Tag); ok {
				out.Tag = t.TagStr()
				out.RepoTags = []string{out.Repository + ":" + out.Tag}
			}
		} else {
			out.Tag = c.refName
		}
	}
	if out.Repository != "" {
		d := out.Digest
		if out.IndexDigest != nil {
			d = *out.IndexDigest
		}
		out.RepoDigests = []string{out.Repository + "@" + d.String()}
	}
	return out, nil
}

func openTarball(src Source) (*Image, error) {
	f, err := os.Open(src.Tarball)
	if err != nil {
		return nil, fmt.Errorf("cannot open the image tarball: %w", err)
	}
	head := make([]byte, 2)
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil {
		return nil, &InputError{Kind: Tarball, Path: src.Tarball, Problem: "is not an image tarball", Err: err}
	}
	opener := func() (io.ReadCloser, error) { return os.Open(src.Tarball) }
	// docker save | gzip is a common way to keep an image as a CI artifact.
	if head[0] == 0x1f && head[1] == 0x8b {
		opener = func() (io.ReadCloser, error) {
			f, err := os.Open(src.Tarball)
			if err != nil {
				return nil, err
			}
			zr, err := gzip.NewReader(bufio.NewReader(f))
			if err != nil {
				f.Close()
				return nil, err
			}
			return readCloser{zr, f}, nil
		}
	}
	names, err := tarNames(opener)
	if err != nil {
		return nil, &InputError{Kind: Tarball, Path: src.Tarball, Problem: "is not a tar archive", Err: err}
	}
	// An OCI layout as a tar (OCI exporters, Dagger's Container.export)
	// keeps the platforms of its index; a docker manifest.json beside it
	// may list one entry per platform without saying which is which.
	if names["index.json"] && names["oci-layout"] {
		return openOCIArchive(src, opener)
	}
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, &InputError{Kind: Tarball, Path: src.Tarball, Problem: "is not a docker save tarball", Err: err}
	}
	if len(m) != 1 {
		return nil, fmt.Errorf("the tarball %s holds %d images: save one image per tarball", src.Tarball, len(m))
	}
	img, err := tarball.Image(opener, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot read the image tarball %s: %w", src.Tarball, err)
	}
	p, err := configPlatform(img)
	if err != nil {
		return nil, err
	}
	// A tarball holds one platform: a --platform that differs is a mistake,
	// but no --platform takes whatever is there.
	if src.Platform != nil && !matches(*src.Platform, p) {
		return nil, &PlatformError{Source: "the tarball " + src.Tarball, Want: src.Platform.String(), Have: []string{p.String()}, Single: true}
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	out := &Image{Image: img, Name: src.Tarball, Digest: d, Platform: p}
	for _, t := range m[0].RepoTags {
		out.RepoTags = append(out.RepoTags, t)
		if tag, err := name.NewTag(t); err == nil && out.Repository == "" {
			out.Repository, out.Tag = tag.Context().Name(), tag.TagStr()
		}
	}
	return out, nil
}

// openOCIArchive unpacks an OCI layout tar into a temporary directory (the
// layout reader needs random access to blobs) and opens it; Close removes
// the directory.
func openOCIArchive(src Source, opener tarball.Opener) (*Image, error) {
	dir, err := os.MkdirTemp("", "botcore-oci-")
	if err != nil {
		return nil, err
	}
	if err := untar(opener, dir); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cannot unpack the OCI layout tarball %s: %w", src.Tarball, err)
	}
	img, err := openLayoutAt(dir, src.Tarball, "the OCI layout tarball "+src.Tarball, src.Platform)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	img.cleanup = func() error { return os.RemoveAll(dir) }
	return img, nil
}

// tarNames lists the regular files of the tar opener opens.
func tarNames(opener tarball.Opener) (map[string]bool, error) {
	rc, err := opener()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	names := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			names[path.Clean(h.Name)] = true
		}
	}
}

// untar writes the regular files of the tar into dir, refusing names that
// would land outside it.
func untar(opener tarball.Opener, dir string) error {
	rc, err := opener()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(h.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("unsafe path %q in the archive", h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
}

type readCloser struct {
	io.Reader
	f *os.File
}

func (r readCloser) Close() error { return r.f.Close() }

// candidates lists the platform images of idx, descending into nested
// indexes (a layout written by botcore pull holds the release index as one
// entry).
func candidates(idx v1.ImageIndex, index *v1.Hash, refName string) ([]candidate, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []candidate
	for _, d := range im.Manifests {
		rn := refName
		if rn == "" {
			rn = d.Annotations[annotationContainerdRef]
			if rn == "" {
				rn = d.Annotations[annotationRefName]
			}
		}
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			dg := d.Digest
			more, err := candidates(child, &dg, rn)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		case d.MediaType.IsImage():
			var p v1.Platform
			if d.Platform != nil {
				p = *d.Platform
			} else {
				// Single-platform layouts often leave the descriptor's
				// platform out; the config is authoritative anyway. What
				// has no readable config (a cosign signature, some other
				// artifact) is not an image to scan.
				img, err := idx.Image(d.Digest)
				if err != nil {
					return nil, err
				}
				if p, err = configPlatform(img); err != nil {
					continue
				}
			}
			// Attestation manifests say unknown/unknown.
			if p.OS == "" || p.OS == "unknown" {
				continue
			}
			out = append(out, candidate{desc: d, platform: p, parent: idx, index: index, refName: rn})
		}
	}
	return out, nil
}

// pick chooses the image of the wanted platform among cands: the one
// matching want, else (no want) DefaultPlatform or the only platform there
// is.
func pick(cands []candidate, want *v1.Platform, where string) (candidate, error) {
	var found []candidate
	var platforms []string
	seen := map[v1.Hash]bool{}
	for _, c := range cands {
		if seen[c.desc.Digest] {
			continue
		}
		seen[c.desc.Digest] = true
		if ps := c.platform.String(); !slices.Contains(platforms, ps) {
			platforms = append(platforms, ps)
		}
		w := want
		if w == nil {
			w = &DefaultPlatform
		}
		if matches(*w, c.platform) {
			found = append(found, c)
		}
	}
	if len(found) == 0 && want == nil && len(seen) == 1 {
		return cands[0], nil
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		w := DefaultPlatform.String()
		if want != nil {
			w = want.String()
		}
		if len(platforms) == 0 {
			return candidate{}, fmt.Errorf("%s holds no image", where)
		}
		return candidate{}, &PlatformError{Source: where, Want: w, Have: platforms}
	}
	var names []string
	for _, c := range found {
		n := c.refName
		if n == "" {
			n = c.desc.Digest.String()
		}
		names = append(names, n)
	}
	return candidate{}, fmt.Errorf("%s holds %d different %s images (%s): keep one image per layout", where, len(found), found[0].platform.String(), strings.Join(names, ", "))
}

// matches says whether got satisfies want, by go-containerregistry's rule
// (what want names must be equal, what it leaves out is free, so
// linux/arm64 takes linux/arm64/v8), with one addition: an arm64 image
// without a variant is arm64/v8 (the OCI image index spec's default and
// what buildkit means by it), so linux/arm64/v8 also takes plain arm64.
func matches(want, got v1.Platform) bool {
	if got.Architecture == "arm64" && got.Variant == "" {
		got.Variant = "v8"
	}
	return got.Satisfies(want)
}

func configPlatform(img v1.Image) (v1.Platform, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Platform{}, fmt.Errorf("cannot read the image config: %w", err)
	}
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}, nil
}
