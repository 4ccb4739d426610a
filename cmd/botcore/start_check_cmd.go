package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/bot-core/delivery/cmd/botcore/internal/startcheck"
)

type startCheckCmd struct {
	Port          int           `required:"" help:"TCP port the service listens on."`
	Path          string        `help:"HTTP path that answers below 400 when the service is healthy (default /health)."`
	HealthCommand string        `name:"health-command" placeholder:"JSON" help:"The health check instead of --path: a command as a JSON array, e.g. '[\"/usr/local/bin/botcore-probe\",\"http://127.0.0.1:8080/health\"]', run beside the service until it exits 0."`
	Timeout       time.Duration `default:"3m" help:"How long the service has to become healthy."`
	Command       []string      `arg:"" passthrough:"" help:"The service's command: its entrypoint and arguments (after --)."`
}

func (c *startCheckCmd) Validate() error {
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("--port %d is not a TCP port", c.Port)
	}
	if c.HealthCommand != "" {
		if c.Path != "" {
			return fmt.Errorf("give --path or --health-command, not both")
		}
		if _, err := c.probe(); err != nil {
			return err
		}
	} else if c.Path != "" && c.Path[0] != '/' {
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
	check := startcheck.Check{Command: cmd, Port: c.Port, Path: c.Path, Timeout: c.Timeout}
	if check.Path == "" {
		check.Path = "/health"
	}
	if c.HealthCommand != "" {
		check.Probe, _ = c.probe() // checked by Validate
	}
	res, err := startcheck.Run(a.ctx, check)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "healthy after %s: %s\n", res.After.Round(100*time.Millisecond), res.Answer)
	return err
}

func (c *startCheckCmd) probe() ([]string, error) {
	var probe []string
	if err := json.Unmarshal([]byte(c.HealthCommand), &probe); err != nil || len(probe) == 0 || probe[0] == "" {
		return nil, fmt.Errorf("--health-command %q must be a JSON array of the command and its arguments, e.g. [\"/bin/check\",\"--fast\"]", c.HealthCommand)
	}
	return probe, nil
}
