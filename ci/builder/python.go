package builder

import (
	"dagger/bot-core/internal/dagger"
)

// python installs the service's requirements into a virtual environment on
// the target platform (wheels can be platform-specific), then copies the
// environment and the app into the slim runtime. pip itself stays behind.
func python(c *dagger.Client, s Spec) (*dagger.Container, error) {
	// Only requirement lines need pip; skipping it when there are none saves
	// an ensurepip under emulation on arm64.
	install := `
python3 -m venv --without-pip /opt/venv
if [ -f /tmp/req/requirements.txt ] && grep -qvE '^[[:space:]]*(#|$)' /tmp/req/requirements.txt; then
  /opt/venv/bin/python3 -m ensurepip --default-pip >/dev/null
  /opt/venv/bin/python3 -m pip install --disable-pip-version-check --no-input -r /tmp/req/requirements.txt
  /opt/venv/bin/python3 -m pip uninstall --yes pip >/dev/null
fi`
	venv := c.Container(dagger.ContainerOpts{Platform: s.Platform}).
		From(s.Images.PythonBuilder).
		WithMountedCache("/root/.cache/pip", c.CacheVolume("bot-core-pip-"+arch(s.Platform))).
		WithDirectory("/tmp/req", s.Source, dagger.ContainerWithDirectoryOpts{Include: []string{"requirements.txt"}}).
		WithExec(sh(install)).
		Directory("/opt/venv").
		WithTimestamps(s.Epoch)

	app := s.Source.
		WithoutDirectory("tests").
		WithTimestamps(s.Epoch)

	return c.Container(dagger.ContainerOpts{Platform: s.Platform}).
		From(s.Images.PythonRuntime).
		WithDirectory("/opt/venv", venv).
		WithDirectory("/app", app, dagger.ContainerWithDirectoryOpts{Exclude: []string{"**/__pycache__", "tests"}}).
		WithWorkdir("/app").
		WithEnvVariable("PYTHONUNBUFFERED", "1").
		WithEnvVariable("PYTHONDONTWRITEBYTECODE", "1").
		WithLabel("com.bot-core.healthcheck", "/opt/venv/bin/python3 -m app.healthcheck").
		WithEntrypoint([]string{"/opt/venv/bin/python3", "-m", "app.main"}), nil
}
