package main

import (
	"fmt"
	"time"

	"github.com/bot-core/delivery/cmd/botcore/internal/startcheck"
)

type startCheckCmd struct {
	Port    int           `required:"" help:"TCP port the service listens on."`
	Path    string        `default:"/health" help:"HTTP path that answers below 400 when the service is healthy."`
	Timeout time.Duration `default:"3m" help:"How long the service has to answer."`
	Command []string      `arg:"" passthrough:"" help:"The service's command: its entrypoint and arguments (after --)."`
}

func (c *startCheckCmd) Validate() error {
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("--port %d is not a TCP port", c.Port)
	}
	if len(c.Path) == 0 || c.Path[0] != '/' {
		return fmt.Errorf("--path %q must start with /", c.Path)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("--timeout %s must be positive", c.Timeout)
	}
	return nil
}

func (c *startCheckCmd) Run(a *app) error {
	cmd := c.Command
	if len(cmd) > 0 && cmd[0] == "--" {
		cmd = cmd[1:]
	}
	res, err := startcheck.Run(a.ctx, startcheck.Check{Command: cmd, Port: c.Port, Path: c.Path, Timeout: c.Timeout})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "healthy after %s: GET %s on port %d answered %d\n", res.After.Round(100*time.Millisecond), c.Path, c.Port, res.Status)
	return err
}
