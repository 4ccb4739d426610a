package deploy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/bot-core/delivery/cmd/botcore/internal/digests"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/moby/client"
)

// pull has the engine pull every image of rel by digest, then tags it with
// the reference the compose file names (so `docker images` shows the
// release).
func (d *Deployer) pull(ctx context.Context, rel *Release) error {
	for _, img := range rel.Images {
		ref, err := name.NewDigest(img.Pinned)
		if err != nil {
			return err
		}
		auth, err := d.registryAuth(ref.Context())
		if err != nil {
			return fmt.Errorf("credentials for %s: %w", ref.Context(), err)
		}
		d.Log("pulling %s", img.Pinned)
		resp, err := d.Docker.ImagePull(ctx, img.Pinned, client.ImagePullOptions{RegistryAuth: auth})
		if err == nil {
			err = resp.Wait(ctx)
		}
		if err != nil {
			return fmt.Errorf("the Docker engine at %s cannot pull %s (%s): %w", d.DockerHost, img.Reference, digests.Short(img.Digest), err)
		}
		if _, err := d.Docker.ImageTag(ctx, client.ImageTagOptions{Source: img.Pinned, Target: img.Reference}); err != nil {
			return fmt.Errorf("cannot tag %s as %s: %w", img.Pinned, img.Reference, err)
		}
	}
	return nil
}

// registryAuth is the X-Registry-Auth value for repo: the keychain's
// credentials, or "" for anonymous.
func (d *Deployer) registryAuth(repo name.Repository) (string, error) {
	a, err := d.Keychain.Resolve(repo)
	if err != nil {
		return "", err
	}
	if a == authn.Anonymous {
		return "", nil
	}
	cfg, err := authn.Authorization(context.Background(), a)
	if err != nil {
		return "", err
	}
	if cfg.Username == "" && cfg.Password == "" && cfg.IdentityToken == "" && cfg.RegistryToken == "" && cfg.Auth == "" {
		return "", nil
	}
	b, err := json.Marshal(map[string]string{
		"username":      cfg.Username,
		"password":      cfg.Password,
		"auth":          cfg.Auth,
		"identitytoken": cfg.IdentityToken,
		"registrytoken": cfg.RegistryToken,
		"serveraddress": repo.RegistryStr(),
	})
	if err != nil {
		return "", err
	}
	return base64.URLEncoding.EncodeToString(b), nil
}

// RunningVersion is the version the running containers of the selected
// services say they run ("" when none runs). Containers of one project at
// different versions are an error: the caller must name the rollback
// version then.
func (d *Deployer) RunningVersion(ctx context.Context, services []string) (string, error) {
	res, err := d.Docker.ContainerList(ctx, client.ContainerListOptions{
		Filters: make(client.Filters).Add("label", labelProject+"="+d.ProjectName),
	})
	if err != nil {
		return "", fmt.Errorf("cannot list the containers of project %s on %s: %w", d.ProjectName, d.DockerHost, err)
	}
	byVersion := map[string][]string{}
	var unlabeled []string
	for _, c := range res.Items {
		svc := c.Labels[labelService]
		if !slices.Contains(services, svc) {
			continue
		}
		v := c.Labels[LabelVersion]
		if v == "" {
			v = c.Labels[LabelImageVersion]
		}
		if v == "" {
			unlabeled = append(unlabeled, svc)
			continue
		}
		byVersion[v] = append(byVersion[v], svc)
	}
	if len(unlabeled) > 0 {
		d.Log("running %s without a %s label: not counted for the previous version", strings.Join(unlabeled, ", "), LabelVersion)
	}
	switch len(byVersion) {
	case 0:
		return "", nil
	case 1:
		for v := range byVersion {
			return v, nil
		}
	}
	return "", &MixedVersionsError{Project: d.ProjectName, Running: byVersion}
}

// MixedVersionsError says the running services of a project are at
// different versions, so none of them is the one to roll back to: the
// caller has to name it.
type MixedVersionsError struct {
	Project string
	// Running are the services running each version.
	Running map[string][]string
}

func (e *MixedVersionsError) Error() string {
	var parts []string
	for _, v := range slices.Sorted(maps.Keys(e.Running)) {
		parts = append(parts, v+" ("+strings.Join(e.Running[v], ", ")+")")
	}
	return fmt.Sprintf("the running services of project %s are at different versions: %s", e.Project, strings.Join(parts, ", "))
}
