package builder

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"dagger/bot-core/internal/dagger"

	"github.com/bot-core/delivery/pipelines/pkgindex"
)

// PipIndex is where pip installs from, and the user:password secret for
// those hosts (nil without).
type PipIndex struct {
	pkgindex.Pip
	Credentials *dagger.Secret
}

// python installs the service's dependencies into a virtual environment on
// the target platform (wheels can be platform-specific), then copies the
// environment and the app into the slim runtime. pip, compilers and headers
// stay behind in the builder image.
//
// Two steps, so that a change to the code does not reinstall every
// dependency: first requirements.txt and pyproject.toml's static
// [project].dependencies (keyed by the two files' text alone), then, for a
// pyproject.toml that declares a project, the project itself as a package
// (keyed by the source; its dependencies are there already).
func python(ctx context.Context, c *dagger.Client, s Spec) (*dagger.Container, error) {
	entries, err := s.Source.Entries(ctx)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", s.Service.Name, err)
	}
	reqs, err := optionalText(ctx, s.Source, entries, "requirements.txt")
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", s.Service.Name, err)
	}
	pyproject, err := optionalText(ctx, s.Source, entries, "pyproject.toml")
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", s.Service.Name, err)
	}
	app := s.Source.
		Filter(dagger.DirectoryFilterOpts{Exclude: []string{"tests", "**/__pycache__", ".venv", "venv"}}).
		WithTimestamps(s.Epoch)

	builder := withPipIndex(c.Container(dagger.ContainerOpts{Platform: s.Platform}).
		From(s.Images.PythonBuilder).
		WithMountedCache("/root/.cache/pip", c.CacheVolume("bot-core-pip-"+Arch(s.Platform))), s.Indexes.Pip).
		WithNewFile("/tmp/req/requirements.txt", reqs).
		WithNewFile("/tmp/req/pyproject.toml", pyproject).
		WithExec(sh(pipCredentials + installDependencies))
	if pyproject != "" {
		builder = builder.
			WithDirectory("/tmp/project", app).
			WithExec(sh(pipCredentials + installProject))
	}
	venv := builder.
		WithExec(sh(`/opt/venv/bin/python3 -m pip uninstall --yes pip >/dev/null 2>&1 || true`)).
		Directory("/opt/venv").
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
			WithEntrypoint([]string{"/opt/venv/bin/python3", "-m", "app.main"}), nil
	}
	// The declared command runs with the environment first on PATH, as
	// after `source venv/bin/activate`: `uvicorn ...` and `python main.py`
	// find the installed packages.
	return ctr.
		WithEnvVariable("VIRTUAL_ENV", "/opt/venv").
		WithEnvVariable("PATH", "/opt/venv/bin:${PATH}", dagger.ContainerWithEnvVariableOpts{Expand: true}).
		WithEntrypoint(s.Service.Command), nil
}

// installDependencies makes the venv and installs requirements.txt together
// with pyproject.toml's [project].dependencies (one resolution, so a pin in
// requirements.txt and a range in pyproject.toml must agree). pip is left in
// the venv for the project step; the last step removes it.
const installDependencies = `
python3 -m venv --without-pip /opt/venv
python3 - <<'PY' >/tmp/req/project-dependencies.txt
import tomllib
with open("/tmp/req/pyproject.toml", "rb") as f:
    project = tomllib.load(f).get("project", {})
if "dependencies" not in project.get("dynamic", []):
    print("\n".join(project.get("dependencies", [])))
PY
# Without requirements or a project there is nothing for pip to do, and
# ensurepip costs seconds under emulation.
if cat /tmp/req/requirements.txt /tmp/req/project-dependencies.txt | grep -qvE '^[[:space:]]*(#|$)'; then
  /opt/venv/bin/python3 -m ensurepip --default-pip >/dev/null
  /opt/venv/bin/python3 -m pip install --disable-pip-version-check --no-input \
    -r /tmp/req/requirements.txt -r /tmp/req/project-dependencies.txt
elif [ -s /tmp/req/pyproject.toml ]; then
  /opt/venv/bin/python3 -m ensurepip --default-pip >/dev/null
fi`

// installProject installs a pyproject.toml that declares a project (PEP 621's
// [project], or Poetry's [tool.poetry]) as a package, its build backend
// fetched from the index as pip does; a pyproject.toml that only configures
// tools (ruff, pytest) is left alone.
const installProject = `
cd /tmp/project
if python3 -c 'import sys, tomllib; d = tomllib.load(open("pyproject.toml", "rb")); sys.exit(0 if "project" in d or "poetry" in d.get("tool", {}) else 1)'; then
  /opt/venv/bin/python3 -m pip install --disable-pip-version-check --no-input .
else
  echo "pyproject.toml declares no [project]: only its dependencies were installed"
fi`

// pipCredentials writes the credentials secret, when mounted, as a netrc
// file on a scratch mount for each index host: pip reads it (NETRC) and
// sends it only to those hosts, the URLs stay free of it, and the file is
// gone with the step.
const pipCredentials = `
if [ -f /run/secrets/botcore-pip-credentials ]; then
  cred=$(cat /run/secrets/botcore-pip-credentials)
  case $cred in *:*) ;; *) echo "--pip-credentials: give user:password (for a token alone, the user the index expects, e.g. __token__:TOKEN)" >&2; exit 2 ;; esac
  for host in $BOTCORE_PIP_HOSTS; do
    printf 'machine %s\nlogin %s\npassword %s\n' "$host" "${cred%%:*}" "${cred#*:}"
  done >"$NETRC"
fi
`

// withPipIndex points pip at the given indexes; without any, the container
// is left as it was, so the steps keep their cache keys.
func withPipIndex(ctr *dagger.Container, idx PipIndex) *dagger.Container {
	env := idx.Env()
	for _, k := range sortedKeys(env) {
		ctr = ctr.WithEnvVariable(k, env[k])
	}
	if idx.Credentials == nil {
		return ctr
	}
	return ctr.
		WithEnvVariable("BOTCORE_PIP_HOSTS", strings.Join(idx.Hosts(), " ")).
		WithMountedTemp("/run/botcore-pip").
		WithEnvVariable("NETRC", "/run/botcore-pip/netrc").
		WithMountedSecret("/run/secrets/botcore-pip-credentials", idx.Credentials)
}

// optionalText is the file's text, or "" when the directory (whose entries
// are given, read once for every file) has no such file.
func optionalText(ctx context.Context, dir *dagger.Directory, entries []string, name string) (string, error) {
	if !slices.Contains(entries, name) {
		return "", nil
	}
	return dir.File(name).Contents(ctx)
}
