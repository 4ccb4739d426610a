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

	ctr := c.Container(dagger.ContainerOpts{Platform: s.Platform}).
		From(s.Images.PythonRuntime).
		WithDirectory("/opt/venv", venv).
		WithDirectory("/app", app).
		WithWorkdir("/app").
		WithEnvVariable("PYTHONUNBUFFERED", "1").
		WithEnvVariable("PYTHONDONTWRITEBYTECODE", "1")
	if len(s.Service.Command) == 0 {
		return ctr.
			WithLabel("com.bot-core.healthcheck", "/opt/venv/bin/python3 -m app.healthcheck").
			WithEntrypoint([]string{"/opt/venv/bin/python3", "-m", "app.main"}), nil
	}
	// The declared command runs with the environment first on PATH, as
	// after `source venv/bin/activate`: `uvicorn ...` and `python main.py`
	// find the installed packages. The health check is the standard
	// library's, so the service needs no healthcheck module of its own.
	return ctr.
		WithEnvVariable("VIRTUAL_ENV", "/opt/venv").
		WithEnvVariable("PATH", "/opt/venv/bin:${PATH}", dagger.ContainerWithEnvVariableOpts{Expand: true}).
		WithLabel("com.bot-core.healthcheck", fmt.Sprintf(
			`/opt/venv/bin/python3 -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:'+os.environ['PORT']+'%s', timeout=5)"`, s.Service.Health)).
		WithEntrypoint(s.Service.Command), nil
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
