package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	syftsbom "github.com/anchore/syft/syft/sbom"
	"golang.org/x/sync/errgroup"

	"github.com/bot-core/delivery/cmd/botcore/internal/imagesrc"
	"github.com/bot-core/delivery/cmd/botcore/internal/sbom"
	"github.com/bot-core/delivery/cmd/botcore/internal/scan"
	"github.com/bot-core/delivery/pipelines/services"
)

// gateCmd is a release's scan and SBOM of every image in one process: the
// tool starts once, the vulnerability DB is opened by one process, and the
// SBOMs are made while the scans run. Each scan and SBOM is what scan and
// sbom would write for that image.
type gateCmd struct {
	scanFlags `embed:""`

	Images       []string `arg:"" name:"image" placeholder:"NAME=LAYOUT" help:"A service name and its OCI image layout directory (which may hold a multi-platform index), e.g. web=dist/web; repeatable."`
	Platform     []string `placeholder:"LIST" default:"linux/amd64" help:"Platforms to scan in every layout, comma-separated (default: ${default})."`
	Out          string   `required:"" placeholder:"DIR" help:"Directory for the reports: NAME/OS-ARCH/ holds scan.json, scan.sarif (category trivy/NAME/OS/ARCH/), vuln.json (cosign vulnerability predicate), findings.json (counts per severity) and sbom.spdx.json, and gate.json sums them up. gate.json is written last, and only when every image was scanned and SBOM'd, whether or not it passed."`
	CatalogCache string   `name:"catalog-cache" placeholder:"DIR" help:"Syft's catalog cache, as for sbom --catalog-cache (default: none, always catalog)."`

	targets []gateTarget
}

// gateTarget is one platform of one service's layout.
type gateTarget struct {
	name, layout string
	platform     string
}

// dir is where the target's reports go, relative to --out.
func (t gateTarget) dir() string {
	return filepath.Join(t.name, strings.ReplaceAll(t.platform, "/", "-"))
}

func (c *gateCmd) Validate() error {
	if err := c.scanFlags.validate(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, img := range c.Images {
		name, layout, ok := strings.Cut(img, "=")
		if !ok || layout == "" {
			return fmt.Errorf("image %q: give NAME=LAYOUT, e.g. web=dist/web", img)
		}
		// The name becomes a directory under --out.
		if err := services.ValidateName(name); err != nil {
			return fmt.Errorf("image %q: %w", img, err)
		}
		if seen[name] {
			return fmt.Errorf("image name %q given twice: each image's reports go to --out/%s", name, name)
		}
		seen[name] = true
		for _, p := range c.Platform {
			parsed, err := imagesrc.ParsePlatform(p)
			if err != nil || parsed == nil {
				return fmt.Errorf("--platform: invalid platform %q: give OS/ARCH[/VARIANT] such as linux/amd64 or linux/arm64", p)
			}
			c.targets = append(c.targets, gateTarget{name: name, layout: layout, platform: parsed.String()})
		}
	}
	return nil
}

// gateSummary is gate.json.
type gateSummary struct {
	TrivyVersion string      `json:"trivy_version"`
	SyftVersion  string      `json:"syft_version"`
	DBUpdatedAt  time.Time   `json:"db_updated_at"`
	FailOn       []string    `json:"fail_on"`
	Images       []gateImage `json:"images"`
}

type gateImage struct {
	Name     string         `json:"name"`
	Platform string         `json:"platform"`
	Digest   string         `json:"digest"`
	Dir      string         `json:"dir"` // under --out
	Passed   bool           `json:"passed"`
	Failure  string         `json:"failure,omitempty"` // the findings that failed the gate
	Counts   map[string]int `json:"counts"`
	Layers   scan.Layers    `json:"layers"`
	Packages int            `json:"packages"`
	// SBOMReused: the SBOM came from the catalog of the same layers.
	SBOMReused bool `json:"sbom_reused"`
}

func (c *gateCmd) Run(g *Globals, a *app) error {
	opts, err := c.options(a)
	if err != nil {
		return err
	}
	images := make([]*imagesrc.Image, len(c.targets))
	for i, t := range c.targets {
		p, _ := imagesrc.ParsePlatform(t.platform)
		if images[i], err = imagesrc.Open(a.ctx, imagesrc.Source{Layout: t.layout, Platform: p}); err != nil {
			return fmt.Errorf("%s (%s): %w", t.name, t.platform, withHint(err))
		}
		defer images[i].Close()
	}
	sum := gateSummary{TrivyVersion: scan.TrivyVersion(), SyftVersion: sbom.SyftVersion(), FailOn: c.Severity,
		Images: make([]gateImage, len(c.targets))}

	// Trivy takes one image at a time (one process-wide DB handle), so the
	// scans are one sequence and the SBOMs another beside it.
	eg, ctx := errgroup.WithContext(a.ctx)
	eg.Go(func() error {
		for i, t := range c.targets {
			if err := c.scanOne(ctx, a, opts, t, images[i], &sum.Images[i], &sum.DBUpdatedAt); err != nil {
				return fmt.Errorf("scan of %s (%s): %w", t.name, t.platform, err)
			}
		}
		return nil
	})
	eg.Go(func() error {
		for i, t := range c.targets {
			if err := c.sbomOne(ctx, a, t, images[i], &sum.Images[i]); err != nil {
				return fmt.Errorf("sbom of %s (%s): %w", t.name, t.platform, err)
			}
		}
		return nil
	})
	if err := eg.Wait(); err != nil {
		return withHint(err)
	}

	if err := writeFile(filepath.Join(c.Out, "gate.json"), func(w io.Writer) error { return jsonTo(w, sum) }); err != nil {
		return fmt.Errorf("cannot write gate.json: %w", err)
	}
	var failed []string
	for _, im := range sum.Images {
		if !im.Passed {
			failed = append(failed, im.Failure)
		}
	}
	if g.JSON {
		if err := a.printJSON(sum); err != nil {
			return err
		}
	}
	a.progress("scanned and SBOM'd %s into %s", plural(len(sum.Images), "image", "images"), c.Out)
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "\n") +
			"\nupgrade those packages (rebuild the images), or list an ID that does not apply, with a reason, in .trivyignore")
	}
	return nil
}

// scanOne scans one image and writes its four scan reports.
func (c *gateCmd) scanOne(ctx context.Context, a *app, opts scan.Options, t gateTarget, img *imagesrc.Image, out *gateImage, dbUpdated *time.Time) error {
	res, err := scan.Run(ctx, img, opts)
	if err != nil {
		return err
	}
	*dbUpdated = res.DBUpdatedAt
	dir := filepath.Join(c.Out, t.dir())
	category := "trivy/" + t.name + "/" + t.platform + "/"
	// In scan's order: Trivy's JSON writer drops the package lists from
	// the report it is given, and the predicate then holds what scan's does.
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{
		{"scan.json", func(w io.Writer) error { return scan.WriteJSON(ctx, w, res.Report) }},
		{"scan.sarif", func(w io.Writer) error { return scan.WriteSARIF(ctx, w, res.Report, category) }},
		{"vuln.json", func(w io.Writer) error { return scan.WriteCosignVuln(ctx, w, res.Report) }},
		{"findings.json", func(w io.Writer) error { return scan.WriteCounts(w, res.Counts()) }},
	} {
		if err := writeFile(filepath.Join(dir, f.name), f.write); err != nil {
			return fmt.Errorf("cannot write %s: %w", f.name, err)
		}
	}
	failing := res.Matching(c.Severity)
	out.Name, out.Platform, out.Digest, out.Dir = t.name, t.platform, img.Digest.String(), t.dir()
	out.Counts, out.Layers, out.Passed = res.Counts(), res.Layers, len(failing) == 0
	if !out.Passed {
		out.Failure = gateFailure(t.name+" ("+t.platform+")", failing, c.Severity)
	}
	a.progress("%s (%s): %s, %d at %s; %d of %d layers read", t.name, t.platform, plural(len(res.Findings), "finding", "findings"),
		len(failing), strings.Join(c.Severity, ","), res.Layers.Analyzed, res.Layers.Total)
	return nil
}

// sbomOne writes one image's SPDX SBOM, named after the service.
func (c *gateCmd) sbomOne(ctx context.Context, a *app, t gateTarget, img *imagesrc.Image, out *gateImage) error {
	opts := sbom.Options{Name: t.name}
	var (
		s   *syftsbom.SBOM
		err error
	)
	if c.CatalogCache != "" {
		s, out.SBOMReused, err = sbom.Cached(ctx, img, c.CatalogCache, opts)
	} else {
		s, err = sbom.Generate(ctx, img, opts)
	}
	if err != nil {
		return err
	}
	out.Packages = s.Artifacts.Packages.PackageCount()
	if err := writeFile(filepath.Join(c.Out, t.dir(), "sbom.spdx.json"), func(w io.Writer) error { return sbom.WriteSPDX(w, s) }); err != nil {
		return fmt.Errorf("cannot write the SBOM: %w", err)
	}
	how := "cataloged"
	if out.SBOMReused {
		how = "from the catalog of the same layers"
	}
	a.progress("%s (%s): SBOM of %s, %s", t.name, t.platform, plural(out.Packages, "package", "packages"), how)
	return nil
}

// jsonTo writes v as indented JSON.
func jsonTo(w io.Writer, v any) error {
	return (&app{stdout: w}).printJSON(v)
}
