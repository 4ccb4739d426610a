package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"dagger/bot-core/internal/dagger"

	"golang.org/x/sync/errgroup"

	"github.com/bot-core/delivery/pipelines/release"
)

// startStage is the start-up gate: every image of every platform runs its
// own entrypoint and command (arm64 under QEMU on an amd64 engine) and its
// declared health check must pass within the timeout, or the release ends
// before anything is scanned or pushed. The botcore tool, mounted into the
// image for the check only, starts the service and runs the check beside
// it; the image that is published is the one built, without the tool.
type startStage struct {
	m       *BotCore
	timeout int // seconds
	skip    bool
}

func (startStage) String() string { return "start-check" }

// startCheckPath is where the probe is mounted in the image under check.
const startCheckPath = "/.botcore-start-check"

func (s startStage) Run(ctx context.Context, r *run) error {
	check := &release.StartCheck{Skipped: s.skip, TimeoutSeconds: s.timeout}
	r.rel.StartCheck = check
	if s.skip {
		fmt.Println("start-up check skipped (--skip-start-check)")
		return nil
	}
	probe := s.m.supplychain().Tools().File(botcoreBin)
	var mu sync.Mutex
	check.Results = map[string]string{}
	eg, gctx := errgroup.WithContext(ctx)
	for _, a := range r.arts {
		for j, p := range r.plan.Platforms {
			eg.Go(func() error {
				key := a.service.Name + " " + p
				said, failure, err := s.image(gctx, a, a.unlabelled[j], probe)
				if err != nil {
					return fmt.Errorf("start-up check of %s: %w", key, err)
				}
				mu.Lock()
				defer mu.Unlock()
				if failure != "" {
					if a.service.Language == "python" && len(a.service.Command) == 0 {
						failure += "\n  (" + a.service.Name + " has no command: in services.yaml, so it was started as python3 -m app.main; give the command that starts it, e.g. command: uvicorn main:app --host 0.0.0.0)"
					}
					check.Failed = append(check.Failed, key+": "+failure)
					check.Results[key] = "failed"
					return nil
				}
				check.Results[key] = said
				fmt.Printf("start-up check %s: %s\n", key, said)
				return nil
			})
		}
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	if len(check.Failed) > 0 {
		return fmt.Errorf("start-up check failed, nothing was pushed (--skip-start-check for images that need other services to start):\n%s",
			strings.Join(check.Failed, "\n"))
	}
	return nil
}

// botcoreBin is where the supply-chain module's tool container keeps botcore.
const botcoreBin = "/usr/local/bin/botcore"

// image runs one platform's image with the probe. A check that ran and
// failed is a failure sentence, not an error: every image gets its verdict.
func (s startStage) image(ctx context.Context, a *artifact, ctr *dagger.Container, probe *dagger.File) (said, failure string, err error) {
	entrypoint, err := ctr.Entrypoint(ctx)
	if err != nil {
		return "", "", err
	}
	args, err := ctr.DefaultArgs(ctx)
	if err != nil {
		return "", "", err
	}
	// The health check is the one the image declares, so the gate proves
	// what compose will run: the prober, or the service's health-command.
	check, err := json.Marshal(a.service.Healthcheck())
	if err != nil {
		return "", "", err
	}
	cmd := append([]string{startCheckPath, "start-check", "--port", strconv.Itoa(a.service.Port), "--health-command", string(check),
		"--timeout", strconv.Itoa(s.timeout) + "s", "--"}, append(entrypoint, args...)...)
	out, err := ctr.WithMountedFile(startCheckPath, probe).WithExec(cmd).Stdout(ctx)
	var ee *dagger.ExecError
	if errors.As(err, &ee) {
		return "", strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(ee.Stderr), "botcore: ")), nil
	}
	return strings.TrimSpace(out), "", err
}
