package main

import (
	"fmt"

	"github.com/bot-core/delivery/cmd/botcore/internal/buildinfo"
)

type versionCmd struct{}

func (c *versionCmd) Run(g *Globals, a *app) error {
	id, err := buildinfo.Read()
	if err != nil {
		return err
	}
	if g.JSON {
		return a.printJSON(id)
	}
	_, err = fmt.Fprintln(a.stdout, buildinfo.Line(id))
	return err
}
