package registry

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Inspection describes one image or index in a registry.
type Inspection struct {
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
	// Index is true for a multi-platform image index.
	Index     bool       `json:"index"`
	Platforms []Platform `json:"platforms"`
	// Attestations counts index entries that are BuildKit attestation
	// manifests rather than runnable images.
	Attestations int `json:"attestation_manifests,omitempty"`
	// SignatureTag and AttestationTag are the cosign tags of the digest
	// when they exist in the same repository (presence only: they are not
	// verified).
	SignatureTag   string `json:"signature_tag,omitempty"`
	AttestationTag string `json:"attestation_tag,omitempty"`
}

// Platform is one runnable image of an inspected reference.
type Platform struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
	// Size is the compressed size as pulled: config plus layers.
	Size    int64             `json:"size"`
	Layers  int               `json:"layers"`
	Created *time.Time        `json:"created,omitempty"`
	Labels  map[string]string `json:"labels"`
}

// Signed reports whether a cosign signature tag exists.
func (i Inspection) Signed() bool { return i.SignatureTag != "" }

// Attested reports whether a cosign attestation tag exists.
func (i Inspection) Attested() bool { return i.AttestationTag != "" }

// Inspect fetches ref (a tag or digest) and describes it: digest, media
// type, every platform image with its labels and compressed size, and
// whether cosign signature/attestation tags exist for its digest.
func Inspect(ctx context.Context, ref name.Reference, progress Progress, opts ...remote.Option) (Inspection, error) {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	progress.printf("fetching %s", ref)
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return Inspection{}, err
	}
	out := Inspection{
		Reference: ref.String(),
		Digest:    desc.Digest.String(),
		MediaType: string(desc.MediaType),
		Index:     desc.MediaType.IsIndex(),
		Platforms: []Platform{},
	}
	images, attestations, err := platformImages(ref, desc, progress)
	if err != nil {
		return Inspection{}, err
	}
	out.Attestations = attestations
	for _, pi := range images {
		p, err := describe(pi.image, pi.platform)
		if err != nil {
			return Inspection{}, err
		}
		out.Platforms = append(out.Platforms, p)
	}

	progress.printf("looking for cosign signature and attestation tags")
	list, err := remote.List(ref.Context(), opts...)
	if err != nil {
		return Inspection{}, err
	}
	if t := CosignTag(out.Digest, "sig"); slices.Contains(list, t) {
		out.SignatureTag = t
	}
	if t := CosignTag(out.Digest, "att"); slices.Contains(list, t) {
		out.AttestationTag = t
	}
	return out, nil
}

// platformImage is one runnable image of a reference, with the platform
// its index names (nil for a single image).
type platformImage struct {
	image    v1.Image
	platform *v1.Platform
}

// platformImages are the runnable images of desc: every platform image of
// an index (counting the attestation manifests it skips), or the image
// itself.
func platformImages(ref name.Reference, desc *remote.Descriptor, progress Progress) ([]platformImage, int, error) {
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, 0, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, 0, fmt.Errorf("cannot parse the index of %s: %w", ref, err)
		}
		var out []platformImage
		attestations := 0
		for _, d := range im.Manifests {
			if !IsPlatformImage(d) {
				attestations++
				continue
			}
			progress.printf("reading platform image %s", d.Digest)
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, 0, err
			}
			out = append(out, platformImage{img, d.Platform})
		}
		return out, attestations, nil
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, 0, err
		}
		return []platformImage{{img, nil}}, 0, nil
	}
	return nil, 0, fmt.Errorf("%s is a %s, not an image or image index", ref, desc.MediaType)
}

func describe(img v1.Image, platform *v1.Platform) (Platform, error) {
	digest, err := img.Digest()
	if err != nil {
		return Platform{}, err
	}
	mf, err := img.Manifest()
	if err != nil {
		return Platform{}, err
	}
	p := Platform{Digest: digest.String(), Size: mf.Config.Size, Layers: len(mf.Layers), Labels: map[string]string{}}
	for _, l := range mf.Layers {
		p.Size += l.Size
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Platform{}, fmt.Errorf("cannot read the config of image %s: %w", digest, err)
	}
	if platform == nil {
		platform = cf.Platform()
	}
	if platform != nil {
		p.Platform = platform.String()
	}
	for k, v := range cf.Config.Labels {
		p.Labels[k] = v
	}
	p.Created = createdFromConfig(cf)
	return p, nil
}
