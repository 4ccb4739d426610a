package deploy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/bot-core/delivery/pipelines/digests"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/moby/client"
)

// pull has the engine pull every image of rel by digest, then tags it with
// the reference the compose file names (so `docker images` shows the
// release). present skips the images the engine already holds by digest: a
// rollback then works with the registry's tag gone.
func (d *Deployer) pull(ctx context.Context, rel *Release, present bool) error {
	for _, img := range rel.Images {
		ref, err := name.NewDigest(img.Pinned)
		if err != nil {
			return err
		}
		if present {
			if _, err := d.Docker.ImageInspect(ctx, img.Pinned); err == nil {
				continue
			}
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
		if _, err := name.NewTag(img.Reference); err != nil {
			continue // already a digest reference: nothing to tag
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

// Observe reads what every running container of the project runs from the
// engine: per service, the image digest (the digest compose pinned, else
// the image's repo digest in the repository the container names) and the
// version label. A digest the state file records as verified stays
// verified. nil when nothing runs.
func (d *Deployer) Observe(ctx context.Context) (*Release, error) {
	res, err := d.Docker.ContainerList(ctx, client.ContainerListOptions{
		Filters: make(client.Filters).Add("label", labelProject+"="+d.ProjectName),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list the containers of project %s on %s: %w", d.ProjectName, d.DockerHost, err)
	}
	st, err := LoadState(d.StateFile)
	if err != nil {
		return nil, err
	}
	var known []Image
	if st != nil && st.Running != nil {
		known = st.Running.Images
	}
	out := &Release{}
	versions := map[string]bool{}
	for _, c := range res.Items {
		svc := c.Labels[labelService]
		if svc == "" || slices.ContainsFunc(out.Images, func(i Image) bool { return i.Service == svc }) {
			continue // replicas run the same image
		}
		ins, err := d.Docker.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil || ins.Container.Config == nil {
			continue // removed meanwhile
		}
		img, err := d.runningImage(ctx, svc, ins.Container.Config.Image, ins.Container.Image)
		if err != nil {
			d.Log("%s runs %s, whose digest the engine does not know: it cannot be rolled back to (%v)", svc, ins.Container.Config.Image, err)
			continue
		}
		img.Version = c.Labels[LabelVersion]
		if img.Version == "" {
			img.Version = c.Labels[LabelImageVersion]
		}
		if i := slices.IndexFunc(known, func(k Image) bool { return k.Service == svc && k.Digest == img.Digest }); i >= 0 {
			img.Verified = known[i].Verified
			img.DependencyOf = known[i].DependencyOf
			if _, err := name.NewTag(known[i].Reference); err == nil {
				img.Reference = known[i].Reference
			}
		}
		versions[img.Version] = true
		out.Images = append(out.Images, img)
	}
	if len(out.Images) == 0 {
		return nil, nil
	}
	slices.SortFunc(out.Images, func(a, b Image) int { return strings.Compare(a.Service, b.Service) })
	if len(versions) == 1 {
		out.Version = out.Images[0].Version
	}
	return out, nil
}

// runningImage is the image a container of svc runs: configured is the
// reference compose gave the container, imageID the local image.
func (d *Deployer) runningImage(ctx context.Context, svc, configured, imageID string) (Image, error) {
	ref, err := name.ParseReference(configured)
	if err != nil {
		return Image{}, err
	}
	img := Image{Service: svc, Reference: configured, ThirdParty: !d.releaseImage(ref)}
	if dg, ok := ref.(name.Digest); ok {
		img.Digest, img.Pinned = dg.DigestStr(), dg.String()
		return img, nil
	}
	ins, err := d.Docker.ImageInspect(ctx, imageID)
	if err != nil {
		return Image{}, err
	}
	for _, rd := range ins.RepoDigests {
		dg, err := name.NewDigest(rd)
		if err == nil && dg.Context().Name() == ref.Context().Name() {
			img.Digest = dg.DigestStr()
			img.Pinned = ref.Context().Digest(img.Digest).String()
			return img, nil
		}
	}
	return Image{}, fmt.Errorf("no repo digest of %s among %v", ref.Context(), ins.RepoDigests)
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
