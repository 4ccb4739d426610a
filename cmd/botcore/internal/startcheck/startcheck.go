// Package startcheck starts a service's command and waits for its health
// answer (an HTTP path, or the health command the image declares), so a
// release can prove every image starts before anything is pushed. It runs inside the image being checked (as build-all's start-up
// gate does), where there may be no shell and no curl: only this binary.
package startcheck

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Check is one start-up check.
type Check struct {
	// Command is the service's entrypoint and arguments.
	Command []string
	// Port and Path are where the service answers its health check.
	Port int
	Path string
	// Probe, when set, is the health check instead of GET Path: a command
	// run beside the service (the image's declared healthcheck) that exits
	// 0 when it is healthy.
	Probe []string
	// Timeout bounds the wait for a healthy answer.
	Timeout time.Duration
	// Interval is the pause between probes (default 500ms).
	Interval time.Duration
}

// Result says how a healthy start went.
type Result struct {
	After time.Duration
	// Status is the HTTP answer (0 for a Probe command).
	Status int
	// Answer says what passed, e.g. "GET /health on port 8080 answered 200".
	Answer string
}

// Failure is a start that did not become healthy: the reason and the
// service's last output lines.
type Failure struct {
	Reason string
	Log    []string
}

func (f *Failure) Error() string {
	if len(f.Log) == 0 {
		return f.Reason + " (it printed nothing)"
	}
	return f.Reason + "; its last output:\n  " + strings.Join(f.Log, "\n  ")
}

// Run starts c.Command, probes http://127.0.0.1:PORT/PATH until it answers
// below 400, then stops the service. A service that exits first, or has not
// answered when the timeout ends, is a *Failure.
func Run(ctx context.Context, c Check) (Result, error) {
	if len(c.Command) == 0 {
		return Result{}, errors.New("no command to start: the image has neither an entrypoint nor a command")
	}
	if c.Interval == 0 {
		c.Interval = 500 * time.Millisecond
	}
	out := &tailBuffer{max: 20}
	cmd := exec.Command(c.Command[0], c.Command[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so stopping it stops what it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, &Failure{Reason: fmt.Sprintf("could not start %q: %v", c.Command[0], err)}
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer stop(cmd, exited)

	probe, what := c.httpProbe(), "answering GET "+c.Path
	if len(c.Probe) > 0 {
		probe, what = c.commandProbe, "its health check "+strings.Join(c.Probe, " ")+" passed"
	}
	deadline := time.NewTimer(c.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	last := "no answer yet"
	for {
		select {
		case err := <-exited:
			exited <- err // for stop
			return Result{}, &Failure{Reason: fmt.Sprintf("it exited (%s) %s after starting, before %s", exitStatus(err), since(start), what), Log: out.lines()}
		case <-deadline.C:
			return Result{}, &Failure{Reason: c.late(last), Log: out.lines()}
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-tick.C:
			res, failed := probe(ctx)
			if failed != "" {
				last = failed
				continue
			}
			res.After = time.Since(start)
			return res, nil
		}
	}
}

func (c Check) late(last string) string {
	if len(c.Probe) > 0 {
		return fmt.Sprintf("its health check %s did not pass within %s (last: %s)", strings.Join(c.Probe, " "), c.Timeout, last)
	}
	return fmt.Sprintf("it did not answer GET %s on port %d within %s (last probe: %s)", c.Path, c.Port, c.Timeout, last)
}

// A probe either passes (a Result) or says why not.
type probe func(ctx context.Context) (Result, string)

func (c Check) httpProbe() probe {
	url := fmt.Sprintf("http://127.0.0.1:%d%s", c.Port, c.Path)
	client := &http.Client{Timeout: 2 * time.Second}
	return func(ctx context.Context) (Result, string) {
		resp, err := client.Get(url)
		if err != nil {
			return Result{}, err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return Result{}, resp.Status
		}
		return Result{Status: resp.StatusCode, Answer: fmt.Sprintf("GET %s on port %d answered %d", c.Path, c.Port, resp.StatusCode)}, ""
	}
}

// probeTimeout bounds one run of a Probe command, as compose's timeout does.
const probeTimeout = 10 * time.Second

func (c Check) commandProbe(ctx context.Context) (Result, string) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.Probe[0], c.Probe[1:]...).CombinedOutput()
	said := strings.Join(strings.Fields(string(out)), " ")
	if len(said) > 300 {
		said = said[:300] + "..."
	}
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, fmt.Sprintf("no result within %s", probeTimeout)
		}
		if said == "" {
			return Result{}, exitStatus(err)
		}
		return Result{}, exitStatus(err) + ": " + said
	}
	if said == "" {
		said = strings.Join(c.Probe, " ") + " exited 0"
	}
	return Result{Answer: said}, ""
}

// stop ends the service: SIGTERM to its process group, SIGKILL after 5 s.
func stop(cmd *exec.Cmd, exited chan error) {
	select {
	case err := <-exited:
		exited <- err
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + ws.Signal().String()
		}
		return fmt.Sprintf("status %d", ee.ExitCode())
	}
	if err != nil {
		return err.Error()
	}
	return "status 0"
}

func since(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }

// tailBuffer keeps the last max lines written to it.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	partial string
	done    []string
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	parts := strings.Split(b.partial+string(p), "\n")
	b.partial = parts[len(parts)-1]
	b.done = append(b.done, parts[:len(parts)-1]...)
	if len(b.done) > b.max {
		b.done = b.done[len(b.done)-b.max:]
	}
	return len(p), nil
}

func (b *tailBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := append([]string(nil), b.done...)
	if b.partial != "" {
		out = append(out, b.partial)
	}
	if len(out) > b.max {
		out = out[len(out)-b.max:]
	}
	return out
}
