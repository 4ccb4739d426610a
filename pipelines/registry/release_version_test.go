package registry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bot-core/delivery/pipelines/labels"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/bot-core/delivery/pipelines/registry/registrytest"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// An older release tagged as a newer one is told apart by its version
// label; the genuine release passes with or without the "v".
func TestCheckReleaseVersion(t *testing.T) {
	srv := registrytest.NewBasic(t)
	repo := srv.Host + "/bot/rust-core-engine"
	old := srv.Push(t, repo+":v1.1.0", registrytest.Index(t, map[string]string{labels.LabelVersion: "v1.1.0"}, time.Time{}))
	srv.Tag(t, repo, "v1.2.0", old) // the re-tag
	bare := srv.Push(t, repo+":nolabel", registrytest.Index(t, nil, time.Time{}))
	opts := []remote.Option{remote.WithAuth(srv.Auth())}
	ref := func(d string) name.Digest {
		r, err := name.NewDigest(repo+"@"+d, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ctx := context.Background()
	for _, want := range []string{"v1.1.0", "1.1.0"} {
		if err := registry.CheckReleaseVersion(ctx, ref(old), want, opts...); err != nil {
			t.Errorf("genuine %s: %v", want, err)
		}
	}
	var vm *registry.VersionMismatchError
	err := registry.CheckReleaseVersion(ctx, ref(old), "v1.2.0", opts...)
	if !errors.As(err, &vm) || vm.Got != "v1.1.0" || !strings.Contains(err.Error(), "is release v1.1.0") || !strings.Contains(err.Error(), "not v1.2.0") {
		t.Errorf("re-tagged: %v", err)
	}
	if err := registry.CheckReleaseVersion(ctx, ref(bare), "v1.2.0", opts...); !errors.As(err, &vm) || !strings.Contains(err.Error(), "carries no org.opencontainers.image.version label") {
		t.Errorf("no label: %v", err)
	}
}
