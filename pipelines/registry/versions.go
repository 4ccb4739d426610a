package registry

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bot-core/delivery/pipelines/labels"
	"github.com/bot-core/delivery/pipelines/tags"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/mod/semver"
)

// Progress receives one line per step of multi-step work; nil discards.
type Progress func(format string, args ...any)

func (p Progress) printf(format string, args ...any) {
	if p != nil {
		p(format, args...)
	}
}

// TagClass says what a tag is to the release process.
type TagClass string

// Tag classes.
const (
	// ClassRelease is a full semantic version without pre-release
	// ("v1.2.3" or "1.2.3"), as pipelines/tags publishes it.
	ClassRelease TagClass = "release"
	// ClassPrerelease is a full semantic version with a pre-release part.
	ClassPrerelease TagClass = "prerelease"
	// ClassCosign is a cosign signature, attestation or SBOM tag
	// (sha256-<hex>.sig / .att / .sbom).
	ClassCosign TagClass = "cosign"
	// ClassOther is everything else: latest, main, 1.2, sha-*, pr-*, ...
	ClassOther TagClass = "other"
)

var cosignTag = regexp.MustCompile(`^sha256-([0-9a-f]{64})\.(sig|att|sbom)$`)

// Classify returns the class of a tag and, for releases and pre-releases,
// its version without the leading "v" (so "v1.2.3" and "1.2.3" are the same
// release). Only full MAJOR.MINOR.PATCH versions count: the moving tags
// "1.2" and "1" are ClassOther.
func Classify(tag string) (TagClass, string) {
	if cosignTag.MatchString(tag) {
		return ClassCosign, ""
	}
	if tags.ValidateVersion(tag) != nil {
		return ClassOther, ""
	}
	v := strings.TrimPrefix(tag, "v")
	if semver.Prerelease("v"+v) != "" {
		return ClassPrerelease, v
	}
	return ClassRelease, v
}

// CosignSubject returns the digest a cosign tag refers to ("sha256:<hex>")
// and its suffix ("sig", "att", "sbom"), or empty strings.
func CosignSubject(tag string) (digest, kind string) {
	m := cosignTag.FindStringSubmatch(tag)
	if m == nil {
		return "", ""
	}
	return "sha256:" + m[1], m[2]
}

// ShortTag abbreviates a cosign tag for tables
// ("sha256-0123456789ab….sig"); other tags are returned unchanged.
func ShortTag(tag string) string {
	if m := cosignTag.FindStringSubmatch(tag); m != nil {
		return "sha256-" + m[1][:12] + "…." + m[2]
	}
	return tag
}

// CosignTag is the tag cosign uses for an artifact of digest ("sig", "att").
func CosignTag(digest, kind string) string {
	return strings.Replace(digest, ":", "-", 1) + "." + kind
}

// compareVersions orders versions (without "v") by semver precedence.
func compareVersions(a, b string) int { return semver.Compare("v"+a, "v"+b) }

// TagInfo is one tag of a repository.
type TagInfo struct {
	Tag     string   `json:"tag"`
	Class   TagClass `json:"class"`
	Version string   `json:"version,omitempty"`
	Digest  string   `json:"digest"`
	// MediaType is the manifest's media type (an index or an image).
	MediaType string `json:"media_type"`
	// Created is from the org.opencontainers.image.created label when set,
	// otherwise the image config's created field; for an index, from its
	// first platform image. Nil when unknown.
	Created *time.Time `json:"created,omitempty"`
}

// SemverFirst sorts tags: releases and pre-releases by version, newest
// first ("v1.2.3" before "1.2.3" for the same version), then all other tags
// by name.
func SemverFirst(list []TagInfo) {
	slices.SortStableFunc(list, func(a, b TagInfo) int {
		return compareTags(a.Tag, a.Version, b.Tag, b.Version)
	})
}

// compareTags orders two tags (with their versions, "" when not semver) as
// SemverFirst does.
func compareTags(aTag, aVersion, bTag, bVersion string) int {
	av, bv := aVersion != "", bVersion != ""
	switch {
	case av && bv:
		if c := compareVersions(bVersion, aVersion); c != 0 {
			return c
		}
		return strings.Compare(bTag, aTag) // "v1.2.3" before "1.2.3"
	case av:
		return -1
	case bv:
		return 1
	}
	return strings.Compare(aTag, bTag)
}

// Versions lists the tags of repo with their digest, media type and
// creation date, sorted by SemverFirst. Manifests are fetched once per
// digest; cosign tags get no creation date.
func Versions(ctx context.Context, repo name.Repository, progress Progress, opts ...remote.Option) ([]TagInfo, error) {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	progress.printf("listing tags of %s", repo)
	list, err := remote.List(repo, opts...)
	if err != nil {
		return nil, err
	}
	progress.printf("reading %d tags of %s", len(list), repo)
	created := map[string]*time.Time{}
	out := make([]TagInfo, 0, len(list))
	for _, tag := range list {
		class, version := Classify(tag)
		desc, err := remote.Head(repo.Tag(tag), opts...)
		if err != nil {
			return nil, err
		}
		ti := TagInfo{Tag: tag, Class: class, Version: version, Digest: desc.Digest.String(), MediaType: string(desc.MediaType)}
		if class != ClassCosign {
			c, seen := created[ti.Digest]
			if !seen {
				if c, err = createdOf(repo.Digest(ti.Digest), opts...); err != nil {
					return nil, err
				}
				created[ti.Digest] = c
			}
			ti.Created = c
		}
		out = append(out, ti)
	}
	SemverFirst(out)
	return out, nil
}

// createdOf reads the creation date of an image or an index's first
// platform image. Registry errors are returned; a config that cannot be
// parsed (a non-image artifact) just has no date.
func createdOf(ref name.Digest, opts ...remote.Option) (*time.Time, error) {
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, err
	}
	var img v1.Image
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, nil
		}
		for _, d := range im.Manifests {
			if IsPlatformImage(d) {
				if img, err = idx.Image(d.Digest); err != nil {
					return nil, err
				}
				break
			}
		}
	} else if desc.MediaType.IsImage() {
		if img, err = desc.Image(); err != nil {
			return nil, err
		}
	}
	if img == nil {
		return nil, nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, nil
	}
	return createdFromConfig(cf), nil
}

// createdFromConfig prefers the OCI created label, then the config field.
func createdFromConfig(cf *v1.ConfigFile) *time.Time {
	if cf == nil {
		return nil
	}
	if s := cf.Config.Labels[labels.LabelCreated]; s != "" {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			t = t.UTC()
			return &t
		}
	}
	if !cf.Created.IsZero() {
		t := cf.Created.UTC()
		return &t
	}
	return nil
}

// IsPlatformImage is true for an index entry that is a runnable image,
// false for BuildKit attestation manifests (platform unknown/unknown).
func IsPlatformImage(d v1.Descriptor) bool {
	if !d.MediaType.IsImage() {
		return false
	}
	if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
		return false
	}
	return d.Platform == nil || d.Platform.OS != "unknown"
}
