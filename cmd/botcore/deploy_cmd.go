package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bot-core/delivery/cmd/botcore/internal/credentials"
	"github.com/bot-core/delivery/cmd/botcore/internal/deploy"
	"github.com/bot-core/delivery/cmd/botcore/internal/signing"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/bot-core/delivery/pipelines/tags"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"
)

type deployCmd struct {
	Version       string        `required:"" placeholder:"V" help:"Release to deploy, e.g. v1.2.3: the compose file is loaded with VERSION=V."`
	ComposeFile   string        `name:"compose-file" short:"f" placeholder:"FILE" default:"docker-compose.prod.yml" help:"Compose file of the stack (default docker-compose.prod.yml)."`
	ProjectName   string        `name:"project-name" short:"p" placeholder:"NAME" default:"bot-core" help:"Compose project name (default bot-core)."`
	EnvFile       string        `name:"env-file" placeholder:"FILE" help:"Env file for interpolating the compose file, passed to docker compose (default: the .env next to the compose file, when it exists, as docker compose does)."`
	Services      []string      `name:"services" short:"s" placeholder:"S" help:"Deploy only these services (repeatable or comma-separated; default every service of the compose file)."`
	HealthTimeout time.Duration `name:"health-timeout" placeholder:"DURATION" default:"3m" help:"How long every service may take to become healthy before the deploy is rolled back (default 3m)."`
	DryRun        bool          `name:"dry-run" help:"Print the plan (images with digests, the verification, the previous version, the compose command) and change nothing."`
	Previous      string        `placeholder:"V" help:"Version to roll back to when the deploy fails (default: the version the running containers carry in their com.bot-core.version label)."`

	// Policy is botcore verify's signature policy (--key, or
	// --certificate-identity/--certificate-oidc-issuer with --ca-roots, ...).
	Policy verifyFlags `embed:""`

	InsecureSkipVerify bool `name:"insecure-skip-verify" help:"DANGEROUS: deploy without verifying image signatures."`
}

// describePolicy says what deploy verifies, for the plan.
func describePolicy(f *verifyFlags) string {
	var s string
	if f.Key != "" {
		s = "cosign signature of each image digest by the key " + f.Key
	} else {
		id := f.CertificateIdentity
		if id == "" {
			id = "~" + f.CertificateIdentityRegexp
		}
		iss := f.CertificateOIDCIssuer
		if iss == "" {
			iss = "~" + f.CertificateOIDCIssuerRegexp
		}
		roots := "the Sigstore public-good trust root"
		switch {
		case f.TrustedRoot != "":
			roots = "the Fulcio CAs of the trusted root " + f.TrustedRoot
		case f.CARoots != "":
			roots = "the Fulcio roots in " + f.CARoots
		}
		s = fmt.Sprintf("cosign keyless signature of each image digest by %s (issuer %s), certificate chained to %s", id, iss, roots)
		if f.InsecureIgnoreSCT {
			s += ", no certificate-transparency timestamp required (--insecure-ignore-sct)"
		}
	}
	if f.InsecureIgnoreTlog {
		return s + ", transparency log NOT checked (--insecure-ignore-tlog)"
	}
	if f.TrustedRoot != "" {
		return s + ", with its transparency-log entry signed by a Rekor key of " + f.TrustedRoot
	}
	return s + ", with its transparency-log entry in " + f.RekorURL
}

// signatureVerifier adapts signing.Verifier (what botcore verify uses) to
// deploy.Verifier.
type signatureVerifier struct {
	v    *signing.Verifier
	desc string
	reg  []remote.Option
}

func (s signatureVerifier) Describe() string { return s.desc }

func (s signatureVerifier) Verify(ctx context.Context, d name.Digest) error {
	_, err := s.v.VerifyImage(ctx, d, s.reg...)
	return withHint(err)
}

func (c *deployCmd) Validate() error {
	if c.Version == "" {
		return nil // kong reports the missing required flag
	}
	if err := tags.ValidateVersion(c.Version); err != nil {
		return err
	}
	if c.Previous != "" {
		if err := tags.ValidateVersion(c.Previous); err != nil {
			return fmt.Errorf("--previous: %w", err)
		}
	}
	if c.HealthTimeout <= 0 {
		return errors.New("--health-timeout must be positive, e.g. 3m")
	}
	if c.InsecureSkipVerify && c.Policy.given() {
		return errors.New("--insecure-skip-verify contradicts the verification flags given: drop one or the other")
	}
	return nil
}

func (c *deployCmd) Run(g *Globals, a *app) error {
	var services []string
	for _, s := range c.Services {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" && !slices.Contains(services, p) {
				services = append(services, p)
			}
		}
	}
	if _, err := os.Stat(c.ComposeFile); err != nil {
		return fmt.Errorf("compose file %s: %w (pass --compose-file)", c.ComposeFile, errors.Unwrap(err))
	}
	envFile, err := c.envFile()
	if err != nil {
		return err
	}

	var sigVerifier *signing.Verifier
	if c.InsecureSkipVerify {
		a.progress("WARNING: --insecure-skip-verify: image signatures will NOT be verified; whatever the registry serves for %s will run", c.Version)
	} else if sigVerifier, err = c.Policy.verifier(a); err != nil {
		return err
	}

	host, why := dockerEngine(a.ctx, a.env)
	var docker *client.Client
	if host != "" {
		if docker, err = client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation()); err != nil {
			return fmt.Errorf("cannot use the Docker engine at %s: %w", host, err)
		}
		defer docker.Close()
	} else if !c.DryRun {
		return fmt.Errorf("no Docker engine to deploy to: %s", why)
	}

	overrides := map[string]string{}
	if host != "" {
		overrides["DOCKER_HOST"] = host
	}
	if g.RegistryRef != "" {
		overrides["DOCKER_REGISTRY"] = g.RegistryRef
	}
	dockerCLI, _ := lookPath("docker", a.env("PATH"))
	d, err := deploy.New(deploy.Config{
		ComposeFile:   c.ComposeFile,
		ProjectName:   c.ProjectName,
		EnvFile:       envFile,
		Services:      services,
		HealthTimeout: c.HealthTimeout,
		Environ:       composeEnviron(a.env, overrides),
		DockerCLI:     dockerCLI,
		DockerHost:    host,
		Docker:        docker,
		Log:           a.progress,
		ComposeOutput: a.stderr,
	})
	if err != nil {
		return err
	}
	// The release registry is the DOCKER_REGISTRY the compose file is
	// interpolated with, which may come from the env file alone.
	releaseRepo, err := d.Lookup("DOCKER_REGISTRY")
	if err != nil {
		return err
	}
	kc, err := newDeployKeychain(releaseRepo, a.env)
	if err != nil {
		return err
	}
	if err := d.SetReleaseRepo(releaseRepo); err != nil {
		return err
	}
	d.Keychain = kc
	if sigVerifier != nil {
		reg := []remote.Option{remote.WithContext(a.ctx), remote.WithAuthFromKeychain(kc), remote.WithUserAgent("botcore")}
		d.Verifier = signatureVerifier{v: sigVerifier, desc: describePolicy(&c.Policy), reg: reg}
	}
	composeVersion, composeErr := d.CheckCompose(a.ctx)
	if composeErr != nil && !c.DryRun {
		return composeErr
	}

	plan, err := d.NewPlan(a.ctx, c.Version, c.Previous)
	if err != nil {
		return withHint(err)
	}
	if c.Previous != "" {
		plan.PreviousSource = "given with --previous"
	}
	if c.InsecureSkipVerify {
		plan.Verification += " (--insecure-skip-verify)"
	}
	if docker == nil {
		plan.PreviousSource = "unknown: " + why
	}
	if c.DryRun {
		if g.JSON {
			return a.printJSON(plan)
		}
		printPlan(a, plan, kc.describe(), composeVersion, composeErr)
		return nil
	}
	if err := d.Deploy(a.ctx, plan); err != nil {
		return err
	}
	if g.JSON {
		return a.printJSON(plan.Release)
	}
	tw := a.table()
	fmt.Fprintln(tw, "SERVICE\tVERSION\tDIGEST\tSTATUS")
	for _, img := range plan.Release.Images {
		fmt.Fprintf(tw, "%s\t%s\t%s\thealthy\n", img.Service, plan.Release.Version, shortDigest(img.Digest))
	}
	return tw.Flush()
}

// envFile is the env file to use: --env-file, which must exist, else the
// .env next to the compose file when there is one (docker compose's
// default).
func (c *deployCmd) envFile() (string, error) {
	if c.EnvFile != "" {
		if _, err := os.Stat(c.EnvFile); err != nil {
			return "", fmt.Errorf("env file %s: %w", c.EnvFile, errors.Unwrap(err))
		}
		return c.EnvFile, nil
	}
	p := filepath.Join(filepath.Dir(c.ComposeFile), ".env")
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
		return p, nil
	}
	return "", nil
}

func printPlan(a *app, p *deploy.Plan, credentials, composeVersion string, composeErr error) {
	w := a.stdout
	fmt.Fprintf(w, "Deploy plan: %s of project %s (compose file %s", p.Release.Version, p.Project, p.ComposeFile)
	if p.EnvFile != "" {
		fmt.Fprintf(w, ", env file %s", p.EnvFile)
	}
	fmt.Fprintln(w, ")")
	fmt.Fprintln(w)
	tw := a.table()
	fmt.Fprintln(tw, "SERVICE\tIMAGE\tDIGEST\tSIGNATURE")
	var deps []string
	for _, img := range p.Release.Images {
		check := "verified"
		switch {
		case img.ThirdParty:
			check = "NOT verified: third-party image, pinned only"
		case p.SkipVerify:
			check = "NOT verified (--insecure-skip-verify)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", img.Service, img.Reference, img.Digest, check)
		if len(img.DependencyOf) > 0 {
			deps = append(deps, fmt.Sprintf("%s (needed by %s)", img.Service, strings.Join(img.DependencyOf, ", ")))
		}
	}
	_ = tw.Flush()
	if len(deps) > 0 {
		fmt.Fprintf(w, "Dependencies:   %s: compose starts them with the selected services, so they are resolved, verified and pinned too\n", strings.Join(deps, "; "))
	}
	fmt.Fprintln(w)
	engine := p.DockerHost
	if engine == "" {
		engine = "(none answers)"
	}
	previous := p.Previous
	if previous == "" {
		previous = "none"
	}
	compose := strings.Join(p.Compose, " ")
	switch {
	case composeErr != nil:
		compose += "   [NOT AVAILABLE: " + composeErr.Error() + "]"
	case composeVersion != "":
		compose += "   [compose " + composeVersion + "]"
	}
	fmt.Fprintf(w, "Docker engine:  %s\n", engine)
	fmt.Fprintf(w, "Credentials:    %s\n", credentials)
	fmt.Fprintf(w, "Verification:   %s\n", p.Verification)
	fmt.Fprintf(w, "Previous:       %s (%s)\n", previous, p.PreviousSource)
	if p.Rollback != nil {
		for _, img := range p.Rollback.Images {
			how := "verified when deployed; verified again before a rollback"
			switch {
			case img.ThirdParty:
				how = "third-party image"
			case p.SkipVerify:
				how = "not verified (--insecure-skip-verify)"
			case !img.Verified:
				how = "not deployed by botcore: verified before a rollback"
			}
			fmt.Fprintf(w, "  running now:  %s %s (%s)\n", img.Service, img.Pinned, how)
		}
	}
	fmt.Fprintf(w, "State file:     %s\n", p.StateFile)
	fmt.Fprintln(w, "Steps:")
	fmt.Fprintln(w, "  1. verify the signature of every release image digest above and that each is release "+p.Release.Version+" (its version label); refuse the whole deploy if one fails (nothing pulled, nothing changed)")
	fmt.Fprintln(w, "  2. pull every image by digest into the Docker engine; record what runs now in the state file")
	fmt.Fprintf(w, "  3. VERSION=%s %s\n", p.Release.Version, compose)
	fmt.Fprintln(w, "     (<pins> is a generated override file pinning each service's image to the verified digest)")
	fmt.Fprintf(w, "  4. wait up to %s for every service to be healthy\n", p.HealthTimeout)
	switch {
	case p.Previous == "":
		fmt.Fprintln(w, "  5. on failure: "+deploy.NoPrevious+"; the stack is left as it is")
	case p.Rollback == nil && p.Previous == p.Release.Version:
		fmt.Fprintf(w, "  5. on failure: %s is already running, nothing older to roll back to; the stack is left as it is\n", p.Previous)
	case p.Rollback == nil:
		fmt.Fprintf(w, "  5. on failure: roll back to %s the same way (verify, pull, up, wait for health); as given with --previous, its tag is resolved "+
			"again at rollback time, so it runs whatever the tag points to then\n", p.Previous)
	default:
		fmt.Fprintf(w, "  5. on failure: roll back to %s: the digests running now (above), verified, up, wait for health\n", p.Previous)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Dry run: nothing was verified, pulled or changed.")
}

// deployKeychain hands the credentials meant for the release registry
// (DOCKER_USERNAME/DOCKER_PASSWORD, GITHUB_TOKEN, the cloud token flows)
// to that registry's host only. Every other registry a compose file names
// (a redis from Docker Hub, a quay.io image) gets what the docker config
// and its credential helpers hold for it, or goes anonymous: the same rule
// for botcore's own requests and for the X-Registry-Auth dockerd pulls with.
type deployKeychain struct {
	host    string         // the release registry; "" when DOCKER_REGISTRY is unset
	release authn.Keychain // env, cloud, docker config for host
	config  authn.Keychain // docker config only
}

func newDeployKeychain(releaseRepo string, env func(string) string) (deployKeychain, error) {
	// A zero Info names no registry and no cloud kind, so of Keychain's
	// steps only the docker config answers.
	k := deployKeychain{config: credentials.Keychain(registry.Info{}, env)}
	if releaseRepo == "" {
		return k, nil
	}
	info, err := registry.Detect(releaseRepo)
	if err != nil {
		return k, fmt.Errorf("DOCKER_REGISTRY: %w", err)
	}
	k.host, k.release = info.Registry, credentials.Keychain(info, env)
	return k, nil
}

func (k deployKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if k.host != "" && r.RegistryStr() == k.host {
		return k.release.Resolve(r)
	}
	return k.config.Resolve(r)
}

// describe says which registry gets which credentials, for the
// plan.
func (k deployKeychain) describe() string {
	if k.host == "" {
		return "the docker config only (DOCKER_REGISTRY is not set, so DOCKER_USERNAME/DOCKER_PASSWORD are sent nowhere)"
	}
	return "DOCKER_USERNAME/DOCKER_PASSWORD (or cloud credentials) for " + k.host + " only; any other registry: the docker config, or anonymous"
}

// composeEnviron is the environment docker compose runs with: the process
// environment as env reads it (the variables the process has, plus the ones
// docker and compose read), with overrides on top.
func composeEnviron(env func(string) string, overrides map[string]string) []string {
	names := []string{"PATH", "HOME", "USER", "TMPDIR", "XDG_RUNTIME_DIR", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT",
		"DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "DOCKER_API_VERSION", "DOCKER_REGISTRY", "COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME"}
	for _, kv := range os.Environ() {
		if k, _, ok := strings.Cut(kv, "="); ok {
			names = append(names, k)
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range names {
		if seen[k] {
			continue
		}
		seen[k] = true
		if v, ok := overrides[k]; ok {
			out = append(out, k+"="+v)
		} else if v := env(k); v != "" {
			out = append(out, k+"="+v)
		}
	}
	for k, v := range overrides {
		if !seen[k] {
			out = append(out, k+"="+v)
		}
	}
	return out
}
