package main

import (
	"fmt"
	"io"
	"os"

	"github.com/bot-core/delivery/cmd/botcore/internal/signing"
	"github.com/bot-core/delivery/pipelines/registry"
)

type attestCmd struct {
	Signing   signFlags `embed:""`
	Predicate string    `required:"" placeholder:"FILE" help:"The predicate, e.g. an SPDX JSON SBOM; - reads stdin."`
	Type      string    `required:"" placeholder:"TYPE" help:"Predicate type: spdxjson, spdx, cyclonedx, slsaprovenance, slsaprovenance1, link, vuln, openvex, custom, or a URI."`
	Image     string    `arg:"" name:"image@digest" help:"Image to attest, by digest: REGISTRY/REPOSITORY@sha256:... or SERVICE@sha256:... under --registry. Tags are refused."`
}

func (c *attestCmd) Run(g *Globals, a *app) error {
	if _, err := signing.PredicateTypeURI(c.Type); err != nil {
		return err
	}
	targets, err := digestTargets(g, a, "attest", []string{c.Image}, false)
	if err != nil {
		return err
	}
	t := targets[0]
	var predicate []byte
	if c.Predicate == "-" {
		predicate, err = io.ReadAll(a.stdin)
	} else {
		predicate, err = os.ReadFile(c.Predicate)
	}
	if err != nil {
		return fmt.Errorf("cannot read the predicate %s: %v", c.Predicate, err)
	}
	signer, err := c.Signing.signer(a)
	if err != nil {
		return err
	}
	a.progress("attesting %s (%s) %s", t.digest, c.Type, c.Signing.describe(signer))
	res, err := signer.Attest(a.ctx, t.digest, predicate, c.Type, t.opts...)
	if err != nil {
		return withHint(fmt.Errorf("cannot attest %s: %w", t.digest, registry.Explain(err, t.info)))
	}
	a.progress("attested %s (attestation in %s)", t.digest, res.Attestation)
	if g.JSON {
		return a.printJSON([]signing.Result{res})
	}
	return printSignResults(a, []signing.Result{res}, true)
}
