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
		if f.CARoots != "" {
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

	kc := deployKeychain{env: a.env}
	reg := []remote.Option{remote.WithContext(a.ctx), remote.WithAuthFromKeychain(kc), remote.WithUserAgent("botcore")}

	var verifier deploy.Verifier
	if c.InsecureSkipVerify {
		a.progress("WARNING: --insecure-skip-verify: image signatures will NOT be verified; whatever the registry serves for %s will run", c.Version)
	} else {
		v, err := c.Policy.verifier(a)
		if err != nil {
			return err
		}
		verifier = signatureVerifier{v: v, desc: describePolicy(&c.Policy), reg: reg}
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
		Keychain:      kc,
		Verifier:      verifier,
		Log:           a.progress,
		ComposeOutput: a.stderr,
	})
	if err != nil {
		return err
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
		printPlan(a, plan, composeVersion, composeErr)
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

func printPlan(a *app, p *deploy.Plan, composeVersion string, composeErr error) {
	w := a.stdout
	fmt.Fprintf(w, "Deploy plan: %s of project %s (compose file %s", p.Release.Version, p.Project, p.ComposeFile)
	if p.EnvFile != "" {
		fmt.Fprintf(w, ", env file %s", p.EnvFile)
	}
	fmt.Fprintln(w, ")")
	fmt.Fprintln(w)
	tw := a.table()
	fmt.Fprintln(tw, "SERVICE\tIMAGE\tDIGEST")
	for _, img := range p.Release.Images {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", img.Service, img.Reference, img.Digest)
	}
	_ = tw.Flush()
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
	fmt.Fprintf(w, "Verification:   %s\n", p.Verification)
	fmt.Fprintf(w, "Previous:       %s (%s)\n", previous, p.PreviousSource)
	fmt.Fprintln(w, "Steps:")
	fmt.Fprintln(w, "  1. verify the signature of every image digest above; refuse the whole deploy if one fails (nothing pulled, nothing changed)")
	fmt.Fprintln(w, "  2. pull every image by digest into the Docker engine")
	fmt.Fprintf(w, "  3. VERSION=%s %s\n", p.Release.Version, compose)
	fmt.Fprintln(w, "     (<pins> is a generated override file pinning each service's image to the verified digest)")
	fmt.Fprintf(w, "  4. wait up to %s for every service to be healthy\n", p.HealthTimeout)
	switch {
	case p.Previous == "":
		fmt.Fprintln(w, "  5. on failure: no previous version to roll back to; the stack is left as it is")
	case p.Previous == p.Release.Version:
		fmt.Fprintf(w, "  5. on failure: %s is already running, nothing older to roll back to; the stack is left as it is\n", p.Previous)
	default:
		fmt.Fprintf(w, "  5. on failure: roll back to %s the same way (verify, pull, up, wait for health)\n", p.Previous)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Dry run: nothing was verified, pulled or changed.")
}

// deployKeychain resolves each registry's credentials the way the other
// commands do for --registry (env variables only for that registry, cloud
// token flows, docker config), whatever registry the compose file names.
type deployKeychain struct{ env func(string) string }

func (k deployKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	info, err := registry.Detect(r.String())
	if err != nil {
		return authn.Anonymous, nil
	}
	return credentials.Keychain(info, k.env).Resolve(r)
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
