package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/consts"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bot-core/delivery/pipelines/labels"
)

// environ is the compose process's environment for version, as a map and
// as KEY=VALUE lines.
func (d *Deployer) environ(version string) (map[string]string, []string) {
	m := map[string]string{}
	for _, kv := range d.Environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			m[k] = v
		}
	}
	m["VERSION"] = version
	if d.EnvFile == "" {
		// Without --env-file compose would read the project directory's
		// .env; botcore did not, so neither does compose.
		m[consts.ComposeDisableDefaultEnvFile] = "true"
	}
	list := make([]string, 0, len(m))
	for k, v := range m {
		list = append(list, k+"="+v)
	}
	slices.Sort(list)
	return m, list
}

// load reads the compose project with VERSION=version, interpolated the
// way docker compose does: the process environment first, then the env
// file.
func (d *Deployer) load(ctx context.Context, version string) (*types.Project, error) {
	env, err := d.interpolation(version)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(d.ComposeFile)
	if err != nil {
		return nil, err
	}
	content, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("cannot read the compose file: %w", err)
	}
	project, err := loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs, Content: content}},
		Environment: env,
	}, func(o *loader.Options) {
		o.SetProjectName(d.ProjectName, true)
	})
	if err != nil {
		return nil, fmt.Errorf("cannot load %s with VERSION=%s: %w", d.ComposeFile, version, err)
	}
	return project, nil
}

// Lookup is the value of key in the compose file's interpolation (the
// environment, then the env file), e.g. DOCKER_REGISTRY; "" when unset.
func (d *Deployer) Lookup(key string) (string, error) {
	env, err := d.interpolation("")
	if err != nil {
		return "", err
	}
	return env[key], nil
}

// interpolation is what the compose file is interpolated with for version,
// the way docker compose does it: the process environment first, then the
// env file.
func (d *Deployer) interpolation(version string) (map[string]string, error) {
	env, _ := d.environ(version)
	if d.EnvFile != "" {
		fromFile, err := dotenv.GetEnvFromFile(env, []string{d.EnvFile})
		if err != nil {
			return nil, fmt.Errorf("cannot read the env file: %w", err)
		}
		for k, v := range fromFile {
			if _, set := env[k]; !set {
				env[k] = v
			}
		}
	}
	return env, nil
}

// Resolve loads the compose file for version and resolves the image of
// each selected service, and of every service they depend on (compose
// starts those with them: `up X` also creates X's depends_on), to its
// digest. Nothing is pulled.
func (d *Deployer) Resolve(ctx context.Context, version string) (*Release, error) {
	project, err := d.load(ctx, version)
	if err != nil {
		return nil, err
	}
	all := project.ServiceNames()
	slices.Sort(all)
	names := all
	dependencyOf := map[string][]string{}
	if len(d.Services) > 0 {
		for _, s := range d.Services {
			if !slices.Contains(all, s) {
				return nil, fmt.Errorf("service %q is not in %s (its services: %s)", s, d.ComposeFile, strings.Join(all, ", "))
			}
		}
		names = nil
		for _, s := range d.Services {
			with, err := project.WithSelectedServices([]string{s}, types.IncludeDependencies)
			if err != nil {
				return nil, fmt.Errorf("service %s in %s: %w", s, d.ComposeFile, err)
			}
			for _, n := range with.ServiceNames() {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
				if n != s && !slices.Contains(d.Services, n) && !slices.Contains(dependencyOf[n], s) {
					dependencyOf[n] = append(dependencyOf[n], s)
				}
			}
		}
		slices.Sort(names)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s has no services", d.ComposeFile)
	}
	rel := &Release{Version: version}
	for _, s := range names {
		svc, err := project.GetService(s)
		if err != nil {
			return nil, err
		}
		if svc.Image == "" {
			return nil, fmt.Errorf("service %s in %s has no image: deploy runs released images only", s, d.ComposeFile)
		}
		ref, err := name.ParseReference(svc.Image)
		if err != nil {
			return nil, fmt.Errorf("service %s: image %q: %w", s, svc.Image, err)
		}
		d.Log("resolving %s", svc.Image)
		opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(d.Keychain), remote.WithUserAgent("botcore")}
		desc, err := remote.Head(ref, opts...)
		if err != nil {
			// Some registries answer HEAD poorly; GET says why it fails.
			full, gerr := remote.Get(ref, opts...)
			if gerr != nil {
				return nil, fmt.Errorf("cannot resolve the image of %s (%s): %w", s, svc.Image, gerr)
			}
			desc = &full.Descriptor
		}
		rel.Images = append(rel.Images, Image{
			Service:      s,
			Reference:    svc.Image,
			Digest:       desc.Digest.String(),
			Pinned:       ref.Context().Digest(desc.Digest.String()).String(),
			Version:      version,
			DependencyOf: dependencyOf[s],
			ThirdParty:   !d.releaseImage(ref),
		})
	}
	return rel, nil
}

// composeArgs is the docker compose command line (after the docker binary).
// A rollback names exactly the services it pins, without their
// dependencies: a service that was not running before stays as it is
// rather than being started unpinned.
func (d *Deployer) composeArgs(pins string, services []string, rollback bool) []string {
	args := []string{"compose", "--ansi", "never", "--progress", "plain",
		"--project-name", d.ProjectName, "--file", d.ComposeFile, "--file", pins}
	if d.EnvFile != "" {
		args = append(args, "--env-file", d.EnvFile)
	}
	args = append(args, "up", "--detach", "--pull", "never")
	if rollback {
		args = append(args, "--no-deps")
	}
	if len(d.Services) > 0 || rollback {
		args = append(args, services...)
	}
	return args
}

// up runs docker compose up for rel, with an override file pinning each
// service to the digest that was verified and pulled.
func (d *Deployer) up(ctx context.Context, rel *Release, rollback bool) error {
	dir, err := os.MkdirTemp("", "botcore-deploy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	project, err := d.load(ctx, rel.Version)
	if err != nil {
		return err
	}
	var pins bytes.Buffer
	pins.WriteString("# Written by botcore deploy: the verified digest of each service,\n" +
		"# and the health check its image declares where the compose file names none.\nservices:\n")
	for _, img := range rel.Images {
		fmt.Fprintf(&pins, "  %s:\n    image: %s\n", strconv.Quote(img.Service), strconv.Quote(img.Pinned))
		test, timings, err := d.declaredHealthcheck(ctx, project, img)
		if err != nil {
			return err
		}
		if test != nil {
			js, _ := json.Marshal(test) // JSON's arrays and strings are YAML too
			fmt.Fprintf(&pins, "    healthcheck:\n      test: %s\n", js)
			if timings {
				pins.WriteString("      interval: 10s\n      timeout: 5s\n      retries: 3\n")
			}
			d.Log("%s: health check from the image's label: %s", img.Service, strings.Join(test[1:], " "))
		}
	}
	pinFile := filepath.Join(dir, "pins.yml")
	if err := os.WriteFile(pinFile, pins.Bytes(), 0o644); err != nil {
		return err
	}
	args := d.composeArgs(pinFile, serviceNames(rel), rollback)
	_, env := d.environ(rel.Version)
	d.Log("VERSION=%s %s %s", rel.Version, d.DockerCLI, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, d.DockerCLI, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = d.ComposeOutput, d.ComposeOutput
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("docker compose up of %s failed: %w", rel.Version, err)
	}
	return nil
}

// declaredHealthcheck is the compose test for img's service when the
// compose file names none: the health check its image declares
// (labels.LabelHealthcheck; OCI images have no HEALTHCHECK), read from the
// pulled image. timings is true when the service has no healthcheck block
// at all, so the override also gives the probe's pace. nil when the compose
// file has a test, disables the check, or the image declares none.
func (d *Deployer) declaredHealthcheck(ctx context.Context, project *types.Project, img Image) (test []string, timings bool, err error) {
	svc, err := project.GetService(img.Service)
	if err != nil {
		return nil, false, err
	}
	if hc := svc.HealthCheck; hc != nil && (hc.Disable || len(hc.Test) > 0) {
		return nil, false, nil
	}
	ins, err := d.Docker.ImageInspect(ctx, img.Pinned)
	if err != nil {
		return nil, false, fmt.Errorf("cannot read the health check the image of %s declares: %w", img.Service, err)
	}
	if ins.Config == nil || ins.Config.Labels[labels.LabelHealthcheck] == "" {
		return nil, false, nil
	}
	raw := ins.Config.Labels[labels.LabelHealthcheck]
	var cmd []string
	if err := json.Unmarshal([]byte(raw), &cmd); err != nil || len(cmd) == 0 || cmd[0] == "" {
		return nil, false, fmt.Errorf("the image of %s (%s) declares the health check %q (label %s), which is not a JSON array of a command and its arguments",
			img.Service, img.Pinned, raw, labels.LabelHealthcheck)
	}
	return append([]string{"CMD"}, cmd...), svc.HealthCheck == nil, nil
}

// CheckCompose makes sure `docker compose` (the Compose v2 CLI plugin)
// runs, and returns its version.
func (d *Deployer) CheckCompose(ctx context.Context) (string, error) {
	if d.DockerCLI == "" {
		return "", errors.New("the docker CLI is not on PATH: `botcore deploy` runs `docker compose`")
	}
	_, env := d.environ("")
	cmd := exec.CommandContext(ctx, d.DockerCLI, "compose", "version", "--short")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("`%s compose version` failed (%v): %s; `botcore deploy` needs the Compose v2 CLI plugin "+
			"(Docker's docker-compose-plugin package, or hack/docker/install.sh, which builds it)", d.DockerCLI, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}
