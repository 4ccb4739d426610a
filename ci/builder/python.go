package builder

import (
	"context"
	"fmt"
	"slices"

	"dagger/bot-core/internal/dagger"
)

// python installs the service's requirements into a virtual environment on
// the target platform (wheels can be platform-specific), then copies the
// environment and the app into the slim runtime. pip itself stays behind.
func python(ctx context.Context, c *dagger.Client, s Spec) (*dagger.Container, error) {
	// The venv depends on requirements.txt alone. Passing its text (not a
	// subset of the source directory) keys the install step by that text, so
	// an app change reuses the installed environment.
	reqs, err := requirementsText(ctx, s.Source)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", s.Service.Name, err)
	}
	// Only requirement lines need pip; skipping it when there are none saves
	// an ensurepip under emulation on arm64.
	install := `
python3 -m venv --without-pip /opt/venv
if grep -qvE '^[[:space:]]*(#|$)' /tmp/req/requirements.txt; then
  /opt/venv/bin/python3 -m ensurepip --default-pip >/dev/null
  /opt/venv/bin/python3 -m pip install --disable-pip-version-check --no-input -r /tmp/req/requirements.txt
  /opt/venv/bin/python3 -m pip uninstall --yes pip >/dev/null
fi`
	venv := c.Container(dagger.ContainerOpts{Platform: s.Platform}).
		From(s.Images.PythonBuilder).
		WithMountedCache("/root/.cache/pip", c.CacheVolume("bot-core-pip-"+arch(s.Platform))).
		WithNewFile("/tmp/req/requirements.txt", reqs).
		WithExec(sh(install)).
		Directory("/opt/venv").
		WithTimestamps(s.Epoch)

	app := s.Source.
		Filter(dagger.DirectoryFilterOpts{Exclude: []string{"tests", "**/__pycache__"}}).
		WithTimestamps(s.Epoch)

	return c.Container(dagger.ContainerOpts{Platform: s.Platform}).
		From(s.Images.PythonRuntime).
		WithDirectory("/opt/venv", venv).
		WithDirectory("/app", app).
		WithWorkdir("/app").
		WithEnvVariable("PYTHONUNBUFFERED", "1").
		WithEnvVariable("PYTHONDONTWRITEBYTECODE", "1").
		WithLabel("com.bot-core.healthcheck", "/opt/venv/bin/python3 -m app.healthcheck").
		WithEntrypoint([]string{"/opt/venv/bin/python3", "-m", "app.main"}), nil
}

// requirementsText is the service's requirements.txt, or "" without one.
func requirementsText(ctx context.Context, src *dagger.Directory) (string, error) {
	entries, err := src.Entries(ctx)
	if err != nil {
		return "", err
	}
	if !slices.Contains(entries, "requirements.txt") {
		return "", nil
	}
	return src.File("requirements.txt").Contents(ctx)
}
