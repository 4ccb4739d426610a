// Command botcore is the operator CLI of the bot-core delivery pipeline: it
// inspects and maintains the images the pipeline publishes.
//
// Commands are fields of CLI, each a struct with a Run method; a new command
// (deploy, scan, sbom, sign, verify, ...) is one more field and one more file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/bot-core/delivery/pipelines/registry"
)

// Exit codes: 0 success, 1 the command failed, 2 the command line is wrong
// (kong's usage-error convention).
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// CLI is the command tree.
type CLI struct {
	Globals

	Registry registryCmd `cmd:"" name:"registry" help:"Detect a registry and log in to it."`
	Versions versionsCmd `cmd:"" help:"List the published versions of each service, newest first."`
	Inspect  inspectCmd  `cmd:"" help:"Show the digest, platforms, labels, sizes and cosign tags of an image."`
	Cleanup  cleanupCmd  `cmd:"" help:"Delete old releases, keeping the newest N (dry run unless --yes)."`
	Pull     pullCmd     `cmd:"" help:"Pull one release of each service into the Docker engine, or into OCI layouts when none answers."`
	Doctor   doctorCmd   `cmd:"" help:"Check the Dagger engine, the registry, the credentials and push/pull/delete with a throwaway image."`
	Scan     scanCmd     `cmd:"" help:"Scan an image (registry, OCI layout or tarball) for vulnerable packages with Trivy; fails on HIGH and CRITICAL findings."`
	VulnDB   vulnDBCmd   `cmd:"" name:"vuln-db" help:"Check for or fetch Trivy's vulnerability DB ahead of the scans that use it."`
	Sbom     sbomCmd     `cmd:"" help:"Write the SPDX 2.3 JSON SBOM of an image (registry, OCI layout or tarball) with Syft."`
	Gate     gateCmd     `cmd:"" help:"Scan and SBOM several OCI layouts in one run, as build-all's gate does: one process for every image, the reports of each in its own directory and a summary in gate.json; fails when an image fails the severity gate."`

	Sign   signCmd   `cmd:"" help:"Sign images by digest with cosign, keylessly (Fulcio) or with a key."`
	Attest attestCmd `cmd:"" help:"Attach a signed in-toto attestation (e.g. an SPDX SBOM) to an image digest."`
	Verify verifyCmd `cmd:"" help:"Verify the cosign signature (and optionally an attestation) of an image."`
	Deploy deployCmd `cmd:"" help:"Deploy a release with docker compose: verify every image's signature, pull, up, wait for health, roll back on failure (--dry-run prints the plan)."`

	StartCheck startCheckCmd `cmd:"" name:"start-check" help:"Start a service's command and wait for its HTTP health answer, then stop it: build-all's start-up gate runs this inside every image before anything is pushed."`

	Version versionCmd `cmd:"" help:"Print this binary's version, the commit it was built from and the Trivy, Syft, cosign and go-containerregistry versions it links."`

	TrustRoot trustRootCmd `cmd:"" name:"trust-root" help:"Save the Sigstore trusted root, so a host without network can verify keyless signatures (--trusted-root)."`
}

// Globals are the flags every command takes. A flag tagged envvar falls back
// to that environment variable (read through the env function given to run,
// so tests need not touch the process environment).
type Globals struct {
	RegistryRef string   `name:"registry" placeholder:"PREFIX" envvar:"DOCKER_REGISTRY" help:"Registry prefix the services are published under, e.g. ghcr.io/acme/bot-core; each service is <prefix>/<service> (env: DOCKER_REGISTRY)."`
	JSON        bool     `name:"json" help:"Print machine-readable JSON on stdout instead of tables."`
	ConnectTo   []string `name:"connect-to" placeholder:"HOST:PORT:CONNECT_HOST:CONNECT_PORT" envvar:"BOTCORE_CONNECT_TO" help:"Connect to CONNECT_HOST:CONNECT_PORT whenever HOST:PORT is needed, keeping URLs, Host headers and TLS names (curl's --connect-to without wildcards: every field is required; repeatable; env: BOTCORE_CONNECT_TO, comma-separated, which deploy ignores)."`
}

// app carries what commands need from the outside world.
type app struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	env    func(string) string
}

// progress prints one progress line on stderr.
func (a *app) progress(format string, args ...any) {
	fmt.Fprintf(a.stderr, "botcore: "+format+"\n", args...)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run is the whole CLI behind main, for tests: it parses args, runs the
// command and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	return runContext(context.Background(), args, stdin, stdout, stderr, env)
}

// exitRequest is how kong's Exit (after --help, or on a usage error) unwinds
// out of parsing without ending the process.
type exitRequest int

func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			req, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			code = int(req)
		}
	}()

	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("botcore"),
		kong.Description("Operator CLI for the bot-core images: check the setup, then inspect, list, pull and clean up what the release pipeline published."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(exitRequest(code)) }),
		kong.Resolvers(envResolver(env, stderr)),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		cliVars(),
	)
	if err != nil {
		fmt.Fprintf(stderr, "botcore: internal error: %v\n", err)
		return exitError
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "botcore: %v\n", err)
		var perr *kong.ParseError
		if errors.As(err, &perr) && perr.Context != nil && perr.Context.Selected() != nil {
			fmt.Fprintf(stderr, "botcore: run `botcore %s --help` for usage\n", perr.Context.Selected().Path())
		} else {
			fmt.Fprintln(stderr, "botcore: run `botcore --help` for usage")
		}
		return exitUsage
	}
	a := &app{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, env: env}
	if err := kctx.Run(&cli.Globals, a); err != nil {
		fmt.Fprintf(stderr, "botcore: %v\n", err)
		return exitError
	}
	return exitOK
}

// envResolver fills flags tagged envvar:"NAME" from env when the command
// line does not set them, except BOTCORE_CONNECT_TO for deploy (a warning
// on stderr says so): deploy reaches production registries, and only an
// explicit --connect-to may redirect them.
func envResolver(env func(string) string, stderr io.Writer) kong.Resolver {
	return kong.ResolverFunc(func(kctx *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
		if flag.Tag == nil {
			return nil, nil
		}
		if name := flag.Tag.Get("envvar"); name != "" {
			if v := env(name); v != "" {
				if sel := kctx.Selected(); name == connectToEnv && sel != nil && sel.Name == "deploy" {
					fmt.Fprintf(stderr, "botcore: warning: deploy ignores %s=%q; pass --connect-to to redirect its connections\n", name, v)
					return nil, nil
				}
				return v, nil
			}
		}
		return nil, nil
	})
}

// info detects the registry prefix given by --registry / DOCKER_REGISTRY.
func (g *Globals) info() (registry.Info, error) {
	if g.RegistryRef == "" {
		return registry.Info{}, errors.New("no registry prefix given: pass --registry or set DOCKER_REGISTRY, e.g. ghcr.io/acme/bot-core")
	}
	return registry.Detect(g.RegistryRef)
}
