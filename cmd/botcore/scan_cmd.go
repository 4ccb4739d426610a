package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/bot-core/delivery/cmd/botcore/internal/imagesrc"
	"github.com/bot-core/delivery/cmd/botcore/internal/scan"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/bot-core/delivery/pipelines/vuln"
	"github.com/google/go-containerregistry/pkg/name"
)

// imageInput is the image a tool command (scan, sbom) reads: from the
// registry, an OCI layout or a tarball, so that the same command works on a
// release and on the build output the pipeline has not pushed yet.
type imageInput struct {
	Image    string `arg:"" optional:"" name:"image" help:"Image in the registry: a full reference (ghcr.io/acme/bot-core/nextjs-ui-dashboard:v1.2.3, or @sha256:...), or SERVICE:TAG under --registry."`
	Layout   string `placeholder:"DIR" help:"Read the image from this OCI image layout directory instead (e.g. written by botcore pull or an OCI exporter); it may hold a multi-platform index."`
	Tarball  string `placeholder:"FILE" help:"Read the image from this tarball instead: docker save output, or an OCI image layout as a tar (either optionally gzipped)."`
	Platform string `placeholder:"OS/ARCH" help:"Platform to pick from a multi-platform image, e.g. linux/arm64 (default: linux/amd64, or the only platform there is)."`
}

// check is the command-line part of Validate: one image source, a
// well-formed platform.
func (in *imageInput) check() error {
	n := 0
	for _, s := range []string{in.Image, in.Layout, in.Tarball} {
		if s != "" {
			n++
		}
	}
	switch {
	case n == 0:
		return errors.New("no image given: pass an image reference, --layout DIR or --tarball FILE")
	case n > 1:
		return errors.New("more than one image given: pass only one of an image reference, --layout DIR and --tarball FILE")
	}
	if _, err := imagesrc.ParsePlatform(in.Platform); err != nil {
		return fmt.Errorf("--platform: %w", err)
	}
	return nil
}

// open opens the image, with registry errors explained the way the other
// commands explain them.
func (in *imageInput) open(g *Globals, a *app) (*imagesrc.Image, error) {
	platform, err := imagesrc.ParsePlatform(in.Platform)
	if err != nil {
		return nil, fmt.Errorf("--platform: %w", err)
	}
	src := imagesrc.Source{Layout: in.Layout, Tarball: in.Tarball, Platform: platform}
	var info registry.Info
	switch {
	case in.Image != "":
		var ref name.Reference
		if ref, info, err = in.reference(g); err != nil {
			return nil, err
		}
		src.Ref, src.Remote = ref, a.remoteOptions(info)
		a.progress("reading %s from the registry", ref)
	case in.Layout != "":
		a.progress("reading the OCI layout %s", in.Layout)
	default:
		a.progress("reading the tarball %s", in.Tarball)
	}
	img, err := imagesrc.Open(a.ctx, src)
	if err != nil {
		if src.Ref != nil {
			err = registry.Explain(err, info)
		}
		return nil, withHint(err)
	}
	a.progress("picked %s %s", img.Platform.String(), shortDigest(img.Digest.String()))
	return img, nil
}

// reference parses the positional image: SERVICE:TAG under the registry
// prefix, or a full reference. Credentials come from the registry's
// keychain, as for the other commands.
func (in *imageInput) reference(g *Globals) (name.Reference, registry.Info, error) {
	s := in.Image
	if !strings.Contains(s, "/") && g.RegistryRef != "" {
		info, err := g.info()
		if err != nil {
			return nil, info, err
		}
		ref, err := parseServiceRef(info, s)
		return ref, info, err
	}
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, registry.Info{}, fmt.Errorf("invalid image reference %q: give REGISTRY/REPOSITORY:TAG (or @sha256:...), or SERVICE:TAG with --registry", s)
	}
	var info registry.Info
	if g.RegistryRef != "" {
		if gi, err := g.info(); err == nil && gi.Registry == ref.Context().RegistryStr() {
			info = gi
		}
	}
	if info.Registry == "" {
		if info, err = registry.Detect(ref.Context().Name()); err != nil {
			info = registry.Info{Kind: registry.KindGeneric, Registry: ref.Context().RegistryStr()}
		}
	}
	if info.Insecure {
		if ref, err = name.ParseReference(s, name.Insecure); err != nil {
			return nil, info, err
		}
	}
	return ref, info, nil
}

type scanCmd struct {
	imageInput `embed:""`
	scanFlags  `embed:""`

	JSONReport    string `name:"json-report" placeholder:"FILE" help:"Write trivy's JSON report to FILE (written even when the scan fails the gate). With --layout or --tarball, --json FILE means the same."`
	SARIF         string `name:"sarif" placeholder:"FILE" help:"Write a SARIF 2.1.0 report (trivy's) to FILE, e.g. for GitHub code scanning (written even when the scan fails the gate)."`
	SARIFCategory string `name:"sarif-category" placeholder:"ID" help:"Set every SARIF run's automationDetails.id to ID, e.g. trivy/<service>/<platform>/: GitHub code scanning keeps one analysis per ID, so the reports of several images for one commit do not replace each other (needs --sarif)."`
	CosignVuln    string `name:"cosign-vuln" placeholder:"FILE" help:"Write the scan as a cosign vulnerability predicate (Trivy's cosign-vuln format) to FILE, for attest --type vuln (written even when the scan fails the gate)."`
	Findings      string `name:"findings" placeholder:"FILE" help:"Write the number of vulnerabilities of each of the five severities to FILE, as one JSON object (severity to count, zeros included), counted as in the JSON report, so without the ignored ones (written even when the scan fails the gate)."`

	// jsonFile is set when --json was given a file name (see takeJSONFile):
	// then it names the report, and stdout keeps the table.
	jsonFile bool
}

// maxTableRows keeps the human summary short; the reports hold the rest.
const maxTableRows = 50

func (c *scanCmd) Validate(kctx *kong.Context) error {
	c.takeJSONFile(kctx.Args)
	if err := c.check(); err != nil {
		return err
	}
	if err := c.scanFlags.validate(); err != nil {
		return err
	}
	if c.SARIFCategory != "" && c.SARIF == "" {
		return errors.New("--sarif-category names the SARIF report's category, but no report is written: add --sarif FILE")
	}
	return nil
}

// takeJSONFile accepts `--json FILE`, trivy's way of naming its JSON report
// (and the pipeline's). The global --json is a switch, so kong leaves FILE
// as the image argument; with --layout or --tarball that argument cannot be
// an image, so it is the report.
func (c *scanCmd) takeJSONFile(args []string) {
	if c.Image == "" || (c.Layout == "" && c.Tarball == "") || c.JSONReport != "" {
		return
	}
	for i := 0; i+1 < len(args) && args[i] != "--"; i++ {
		if args[i] == "--json" && args[i+1] == c.Image {
			c.JSONReport, c.Image, c.jsonFile = c.Image, "", true
			return
		}
	}
}

// scanSummary is what scan prints with --json.
type scanSummary struct {
	Image        string         `json:"image"`
	Platform     string         `json:"platform"`
	Digest       string         `json:"digest"`
	TrivyVersion string         `json:"trivy_version"`
	DBDir        string         `json:"db_dir"`
	DBUpdatedAt  time.Time      `json:"db_updated_at"`
	Counts       map[string]int `json:"counts"`
	Findings     []scan.Finding `json:"findings"`
	FailOn       []string       `json:"fail_on"`
	Failed       int            `json:"failed"`
	Layers       scan.Layers    `json:"layers"`
}

func (c *scanCmd) Run(g *Globals, a *app) error {
	opts, err := c.options(a)
	if err != nil {
		return err
	}

	img, err := c.open(g, a)
	if err != nil {
		return err
	}
	defer img.Close()
	res, err := scan.Run(a.ctx, img, opts)
	if err != nil {
		return withHint(err)
	}
	// Reports first: CI uploads them whether or not the gate passes.
	if c.JSONReport != "" {
		if err := writeFile(c.JSONReport, func(w io.Writer) error { return scan.WriteJSON(a.ctx, w, res.Report) }); err != nil {
			return fmt.Errorf("cannot write the JSON report: %w", err)
		}
		a.progress("wrote the JSON report %s", c.JSONReport)
	}
	if c.SARIF != "" {
		if err := writeFile(c.SARIF, func(w io.Writer) error { return scan.WriteSARIF(a.ctx, w, res.Report, c.SARIFCategory) }); err != nil {
			return fmt.Errorf("cannot write the SARIF report: %w", err)
		}
		a.progress("wrote the SARIF report %s", c.SARIF)
	}
	if c.CosignVuln != "" {
		if err := writeFile(c.CosignVuln, func(w io.Writer) error { return scan.WriteCosignVuln(a.ctx, w, res.Report) }); err != nil {
			return fmt.Errorf("cannot write the cosign vulnerability predicate: %w", err)
		}
		a.progress("wrote the cosign vulnerability predicate %s", c.CosignVuln)
	}
	if c.Findings != "" {
		if err := writeFile(c.Findings, func(w io.Writer) error { return scan.WriteCounts(w, res.Counts()) }); err != nil {
			return fmt.Errorf("cannot write the findings counts: %w", err)
		}
		a.progress("wrote the findings counts %s", c.Findings)
	}

	failing := res.Matching(c.Severity)
	if g.JSON && !c.jsonFile {
		err = a.printJSON(scanSummary{
			Image: img.Name, Platform: img.Platform.String(), Digest: img.Digest.String(),
			TrivyVersion: scan.TrivyVersion(), DBDir: res.DBDir, DBUpdatedAt: res.DBUpdatedAt,
			Counts: res.Counts(), Findings: nonNil(res.Findings), FailOn: c.Severity, Failed: len(failing), Layers: res.Layers,
		})
	} else {
		err = c.printTable(a, img, res)
	}
	if err != nil {
		return err
	}
	if len(failing) == 0 {
		return nil
	}
	return errors.New(gateFailure(img.String(), failing, c.Severity) +
		"\nupgrade those packages (rebuild the image), or list an ID that does not apply, with a reason, in .trivyignore")
}

// gateFailure names each finding that fails the gate.
func gateFailure(image string, failing []scan.Finding, severities []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s has %s at %s:", image, plural(len(failing), "vulnerability", "vulnerabilities"), strings.Join(severities, ","))
	for _, f := range failing {
		fix := "fixed in " + f.FixedVersion
		if f.FixedVersion == "" {
			fix = "no fix"
		}
		fmt.Fprintf(&b, "\n  %s %s: %s (%s), %s", f.Package, f.InstalledVersion, f.VulnerabilityID, f.Severity, fix)
	}
	return b.String()
}

// scanFlags are what scan and gate take to run Trivy: the database, the
// gate and the layer cache.
type scanFlags struct {
	DBDir         string   `name:"db-dir" placeholder:"DIR" envvar:"BOTCORE_TRIVY_DB_DIR" help:"Vulnerability DB directory holding trivy.db and metadata.json (what trivy keeps in <cache>/db), used as it is and strictly offline: no download, no update check (env: BOTCORE_TRIVY_DB_DIR)."`
	CacheDir      string   `placeholder:"DIR" envvar:"TRIVY_CACHE_DIR" help:"Trivy cache directory to download the vulnerability DB into (DIR/db) when it is missing or due for an update; default $XDG_CACHE_HOME/trivy or ~/.cache/trivy (env: TRIVY_CACHE_DIR)."`
	DBRepository  []string `name:"db-repository" placeholder:"REF" envvar:"TRIVY_DB_REPOSITORY" help:"OCI repositories to download the DB from, tried in order (default: trivy's, mirror.gcr.io/aquasec/trivy-db:2 then ghcr.io/aquasecurity/trivy-db:2; env: TRIVY_DB_REPOSITORY)."`
	Severity      []string `placeholder:"LIST" default:"${default_severities}" help:"Severities that fail the scan, comma-separated, from ${severities}; the reports and the summary list every severity (default: ${default})."`
	IgnoreUnfixed bool     `help:"Leave out vulnerabilities that have no fixed version yet."`
	IgnoreFile    string   `name:"ignorefile" placeholder:"PATH" help:"Trivy ignore file (.trivyignore, or .trivyignore.yaml) of vulnerability IDs to leave out (default: .trivyignore in the current directory, if there is one)."`
	LayerCache    string   `name:"layer-cache" placeholder:"DIR" help:"Keep Trivy's analysis of each layer in DIR (its fanal cache, keyed by the layer's diff ID and the analyzers' versions): a later scan with the same DIR reads only the layers it has not seen, whatever image they are in, e.g. a new version of unchanged sources; one scan at a time per DIR (default: none, every layer is read)."`
}

func (f *scanFlags) validate() error {
	if f.DBDir != "" && f.CacheDir != "" {
		return errors.New("both --db-dir and --cache-dir given: --db-dir scans offline with that DB, --cache-dir downloads it; pass one")
	}
	severities, err := vuln.Normalize(f.Severity)
	if err != nil {
		return fmt.Errorf("--severity: %w", err)
	}
	f.Severity = severities
	return nil
}

// options are the scan's options; the ignore file defaults to
// ./.trivyignore when there is one.
func (f *scanFlags) options(a *app) (scan.Options, error) {
	ignoreFile := f.IgnoreFile
	if ignoreFile != "" {
		if _, err := os.Stat(ignoreFile); err != nil {
			return scan.Options{}, fmt.Errorf("cannot read the ignore file %s: pass an existing .trivyignore to --ignorefile", ignoreFile)
		}
	} else if _, err := os.Stat(".trivyignore"); err == nil {
		ignoreFile = ".trivyignore"
		a.progress("using the ignore file .trivyignore")
	}
	opts := scan.Options{
		IgnoreUnfixed: f.IgnoreUnfixed,
		IgnoreFile:    ignoreFile,
		Progress:      a.progress,
		Log:           a.stderr,
		LayerCache:    f.LayerCache,
	}
	if f.DBDir != "" {
		opts.DB.Dir = f.DBDir
		return opts, nil
	}
	opts.DB.CacheDir = f.CacheDir
	if opts.DB.CacheDir == "" {
		opts.DB.CacheDir = scan.DefaultCacheDir(a.env)
	}
	var err error
	opts.DB.Repositories, err = dbRepositories(f.DBRepository)
	return opts, err
}

func (c *scanCmd) printTable(a *app, img *imagesrc.Image, res *scan.Result) error {
	fmt.Fprintf(a.stdout, "%s %s, trivy %s, DB updated %s\n", img, shortDigest(img.Digest.String()),
		scan.TrivyVersion(), res.DBUpdatedAt.UTC().Format(time.RFC3339))
	if len(res.Findings) == 0 {
		fmt.Fprintln(a.stdout, "no vulnerabilities found")
	} else {
		tw := a.table()
		fmt.Fprintln(tw, "SEVERITY\tID\tPACKAGE\tINSTALLED\tFIXED\tWHERE")
		for i, f := range res.Findings {
			if i == maxTableRows {
				fmt.Fprintf(tw, "...\t%d more\t\t\t\t(see --json-report)\n", len(res.Findings)-maxTableRows)
				break
			}
			where := f.PkgPath
			if where == "" {
				where = f.Target
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Severity, f.VulnerabilityID, f.Package, f.InstalledVersion, f.Fix(), where)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	counts := res.Counts()
	var parts []string
	for i := len(scan.Severities) - 1; i >= 0; i-- {
		s := scan.Severities[i]
		parts = append(parts, fmt.Sprintf("%s %d", s, counts[s]))
	}
	_, err := fmt.Fprintf(a.stdout, "total %d: %s\n", len(res.Findings), strings.Join(parts, ", "))
	return err
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// writeFile writes path, creating its directory, through a temporary file
// (replaceFile), so that a failed write never leaves half a report (or
// SBOM) behind.
func writeFile(path string, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return replaceFile(path, 0o644, write)
}

// replaceFile writes path through a temporary file in the same directory
// renamed over it, so a failure leaves the old file (or none) behind; the
// file gets mode perm whatever the umask.
func replaceFile(path string, perm os.FileMode, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
