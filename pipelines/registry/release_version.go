package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/bot-core/delivery/pipelines/labels"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// VersionMismatchError says an image is not the release it was asked for:
// its version label (part of what the signature covers, through the
// index and config digests) names another release, or none.
type VersionMismatchError struct {
	Ref  string // the digest checked
	Want string // the release asked for
	Got  string // the version label; "" when the image has none
}

func (e *VersionMismatchError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf("%s carries no %s label, so nothing says it is release %s", e.Ref, labels.LabelVersion, e.Want)
	}
	return fmt.Sprintf("%s is release %s (its %s label), not %s: an image released as %s was tagged %s",
		e.Ref, e.Got, labels.LabelVersion, e.Want, e.Got, e.Want)
}

// CheckReleaseVersion requires every platform image of ref to be labelled
// release want ("v1.2.3" and "1.2.3" are the same release). A signature
// proves who built an image, not which release it is: someone who can push
// may tag an older signed release v1.2.3. Checked after the signature, the
// label binds the digest to its release.
func CheckReleaseVersion(ctx context.Context, ref name.Digest, want string, opts ...remote.Option) error {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return err
	}
	return CheckRelease(ref, desc, want)
}

// CheckRelease is CheckReleaseVersion for a caller that has already
// fetched ref's descriptor (to verify it), so the manifest is read once.
func CheckRelease(ref name.Digest, desc *remote.Descriptor, want string) error {
	images, _, err := platformImages(ref, desc, nil)
	if err != nil {
		return err
	}
	if len(images) == 0 {
		return &VersionMismatchError{Ref: ref.String(), Want: want}
	}
	for _, pi := range images {
		cf, err := pi.image.ConfigFile()
		if err != nil {
			return fmt.Errorf("cannot read the config of an image of %s: %w", ref, err)
		}
		got := cf.Config.Labels[labels.LabelVersion]
		if strings.TrimPrefix(got, "v") != strings.TrimPrefix(want, "v") || got == "" {
			return &VersionMismatchError{Ref: ref.String(), Want: want, Got: got}
		}
	}
	return nil
}
