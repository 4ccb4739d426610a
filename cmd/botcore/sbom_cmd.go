package main

import (
	"fmt"
	"io"

	syftsbom "github.com/anchore/syft/syft/sbom"

	"github.com/bot-core/delivery/cmd/botcore/internal/sbom"
)

type sbomCmd struct {
	imageInput `embed:""`

	Output       string `short:"o" placeholder:"FILE" default:"-" help:"Write the SPDX 2.3 JSON document to FILE (default: stdout)."`
	Name         string `placeholder:"NAME" help:"Document name, also the name of the image's package in it (default: the image's repository, else the layout directory's or tarball's name)."`
	CatalogCache string `name:"catalog-cache" placeholder:"DIR" help:"Keep Syft's catalog of the image's layers in DIR, keyed by Syft's version, the platform and the layers' diff IDs: an image with the same layers (e.g. a new version of unchanged sources) gets its SBOM from it without reading a layer, the document still naming that image. Catalogs unused for 30 days are pruned (default: none, always catalog)."`
}

func (c *sbomCmd) Validate() error { return c.check() }

// sbomSummary is what sbom prints with --json when the document goes to a
// file.
type sbomSummary struct {
	Image       string `json:"image"`
	Platform    string `json:"platform"`
	Digest      string `json:"digest"`
	Output      string `json:"output"`
	SPDXVersion string `json:"spdx_version"`
	Name        string `json:"name"`
	Packages    int    `json:"packages"`
	SyftVersion string `json:"syft_version"`
}

func (c *sbomCmd) Run(g *Globals, a *app) error {
	img, err := c.open(g, a)
	if err != nil {
		return err
	}
	defer img.Close()
	name := c.Name
	if name == "" {
		name = sbom.DefaultName(img)
	}
	var s *syftsbom.SBOM
	if c.CatalogCache != "" {
		reused := false
		if s, reused, err = sbom.Cached(a.ctx, img, c.CatalogCache, sbom.Options{Name: name}); err != nil {
			return err
		}
		if reused {
			a.progress("took the packages from the catalog of the same layers in %s (cataloged before, none read now)", c.CatalogCache)
		} else {
			a.progress("cataloged %s with syft %s, kept in %s", img, sbom.SyftVersion(), c.CatalogCache)
		}
	} else {
		a.progress("cataloging %s with syft %s", img, sbom.SyftVersion())
		if s, err = sbom.Generate(a.ctx, img, sbom.Options{Name: name}); err != nil {
			return err
		}
	}
	n := s.Artifacts.Packages.PackageCount()
	a.progress("found %s", plural(n, "package", "packages"))
	write := func(w io.Writer) error { return sbom.WriteSPDX(w, s) }
	if c.Output == "-" || c.Output == "" {
		return write(a.stdout)
	}
	if err := writeFile(c.Output, write); err != nil {
		return fmt.Errorf("cannot write the SBOM: %w", err)
	}
	a.progress("wrote the SPDX %s SBOM of %s to %s", sbom.SPDXVersion, name, c.Output)
	if g.JSON {
		return a.printJSON(sbomSummary{
			Image: img.Name, Platform: img.Platform.String(), Digest: img.Digest.String(),
			Output: c.Output, SPDXVersion: "SPDX-" + sbom.SPDXVersion, Name: name,
			Packages: n, SyftVersion: sbom.SyftVersion(),
		})
	}
	return nil
}
