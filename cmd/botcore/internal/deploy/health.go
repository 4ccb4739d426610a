package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bot-core/delivery/pipelines/digests"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// HealthError says which services did not become healthy, and why.
type HealthError struct {
	// Services are the failing services, in the release's order.
	Services []string
	// Reasons are one line per failing service.
	Reasons []string
}

func (e *HealthError) Error() string {
	if len(e.Services) == 1 {
		return "service " + e.Reasons[0]
	}
	return "services " + strings.Join(e.Reasons, "; ")
}

// serviceState is what the engine says about one service of a release.
type serviceState struct {
	status string // for progress lines
	ok     bool   // healthy, or running without a healthcheck
	failed bool   // will not become healthy (unhealthy, exited, ...)
}

// waitHealthy polls the containers of rel until all are healthy, one
// fails, or HealthTimeout passes, printing each status change.
func (d *Deployer) waitHealthy(ctx context.Context, rel *Release) error {
	start := time.Now()
	deadline := start.Add(d.HealthTimeout)
	d.Log("waiting up to %s for %s to be healthy", d.HealthTimeout, strings.Join(serviceNames(rel), ", "))
	printed := map[string]string{}
	for {
		states, err := d.states(ctx, rel)
		if err != nil {
			return err
		}
		allOK := true
		var failed HealthError
		for _, img := range rel.Images {
			st := states[img.Service]
			if printed[img.Service] != st.status {
				d.Log("%s: %s (%s)", img.Service, st.status, time.Since(start).Round(100*time.Millisecond))
				printed[img.Service] = st.status
			}
			if st.failed {
				failed.Services = append(failed.Services, img.Service)
				failed.Reasons = append(failed.Reasons, img.Service+" is "+st.status)
			}
			allOK = allOK && st.ok
		}
		if len(failed.Services) > 0 {
			return &failed
		}
		if allOK {
			return nil
		}
		if time.Now().After(deadline) {
			var late HealthError
			for _, img := range rel.Images {
				if st := states[img.Service]; !st.ok {
					late.Services = append(late.Services, img.Service)
					late.Reasons = append(late.Reasons, fmt.Sprintf("%s is not healthy after %s (%s)", img.Service, d.HealthTimeout, st.status))
				}
			}
			return &late
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d.PollInterval):
		}
	}
}

// states inspects the project's containers that run rel's images.
func (d *Deployer) states(ctx context.Context, rel *Release) (map[string]serviceState, error) {
	res, err := d.Docker.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", labelProject+"="+d.ProjectName),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list the containers of project %s: %w", d.ProjectName, err)
	}
	states := map[string]serviceState{}
	for _, img := range rel.Images {
		var mine []container.InspectResponse
		for _, c := range res.Items {
			if c.Labels[labelService] != img.Service {
				continue
			}
			ins, err := d.Docker.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
			if err != nil {
				continue // removed meanwhile
			}
			if ins.Container.Config != nil && ins.Container.Config.Image == img.Pinned {
				mine = append(mine, ins.Container)
			}
		}
		states[img.Service] = combine(img, mine)
	}
	return states, nil
}

// combine folds the states of a service's containers (replicas) into one.
func combine(img Image, cs []container.InspectResponse) serviceState {
	if len(cs) == 0 {
		return serviceState{status: "not running: no container of the service runs " + digests.Short(img.Digest), failed: true}
	}
	out := serviceState{ok: true, status: containerState(cs[0]).status}
	var pending string
	for _, c := range cs {
		st := containerState(c)
		if st.failed && !out.failed {
			out.status = st.status
		}
		if !st.ok && !st.failed && pending == "" {
			pending = st.status
		}
		out.ok = out.ok && st.ok
		out.failed = out.failed || st.failed
	}
	if !out.failed && pending != "" {
		out.status = pending
	}
	return out
}

func containerState(c container.InspectResponse) serviceState {
	s := c.State
	if s == nil {
		return serviceState{status: "in an unknown state"}
	}
	switch s.Status {
	case "running":
		if s.Health == nil || s.Health.Status == "" || s.Health.Status == container.NoHealthcheck {
			return serviceState{status: "running (no healthcheck)", ok: true}
		}
		switch s.Health.Status {
		case container.Healthy:
			return serviceState{status: "healthy", ok: true}
		case container.Unhealthy:
			return serviceState{status: "unhealthy" + lastCheck(s.Health), failed: true}
		default:
			return serviceState{status: "starting" + lastCheck(s.Health)}
		}
	case "created":
		return serviceState{status: "created"}
	case "restarting":
		return serviceState{status: fmt.Sprintf("restarting (last exit code %d, %d restarts)", s.ExitCode, c.RestartCount)}
	case "exited", "dead":
		st := fmt.Sprintf("%s with code %d", s.Status, s.ExitCode)
		if s.OOMKilled {
			st += ", killed for lack of memory"
		}
		if s.Error != "" {
			st += ": " + s.Error
		}
		return serviceState{status: st, failed: true}
	default:
		return serviceState{status: string(s.Status), failed: true}
	}
}

// lastCheck summarizes the latest healthcheck result.
func lastCheck(h *container.Health) string {
	if h == nil || len(h.Log) == 0 {
		return ""
	}
	last := h.Log[len(h.Log)-1]
	if last.ExitCode == 0 {
		return ": last check passed"
	}
	out := strings.Join(strings.Fields(last.Output), " ")
	if len(out) > 200 {
		out = out[:200] + "..."
	}
	streak := ""
	if h.FailingStreak > 1 {
		streak = fmt.Sprintf(", %d in a row", h.FailingStreak)
	}
	return fmt.Sprintf(": last check failed (exit code %d%s): %s", last.ExitCode, streak, out)
}
