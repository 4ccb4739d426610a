package services

import (
	"slices"
	"strings"
	"testing"
)

func TestParseManifest(t *testing.T) {
	good := `
services:
  - name: rust-core-engine
    language: rust
    path: examples/bot-core/rust-core-engine
    port: 8080
    health: /health
`
	m, err := ParseManifest([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Services[0]; got.Name != "rust-core-engine" || got.Port != 8080 || got.Path != "examples/bot-core/rust-core-engine" {
		t.Fatalf("parsed %+v", got)
	}

	for _, c := range []struct{ yaml, want string }{
		{`services: []`, "no services"},
		{"services:\n  - {name: a, language: rust, path: a, port: 1, health: /h, colour: red}", "field colour not found"},
		{"services:\n  - {name: Bad_Name, language: rust, path: a, port: 1, health: /h}", "valid image repository name"},
		{"services:\n  - {name: a, language: go, path: a, port: 1, health: /h}", `language "go" is not one of rust, python, nextjs`},
		{"services:\n  - {name: a, language: rust, path: ../x, port: 1, health: /h}", "stay inside"},
		{"services:\n  - {name: a, language: rust, path: /abs, port: 1, health: /h}", "stay inside"},
		{"services:\n  - {name: a, language: rust, path: a, port: 70000, health: /h}", "not a TCP port"},
		{"services:\n  - {name: a, language: rust, path: a, port: 1, health: h}", "must be an HTTP path"},
		{"services:\n  - {name: a, language: rust, path: a, port: 1, health: /h}\n  - {name: a, language: rust, path: b, port: 1, health: /h}", "declared twice"},
		{"services:\n  - {name: a, path: a, port: 1, health: /h}", `language "" is not one of rust, python, nextjs (or give dockerfile:`},
		{"services:\n  - {name: a, language: rust, dockerfile: Dockerfile, path: a, port: 1, health: /h}", `services[0] "a": give either language (a native builder) or dockerfile, not both`},
		{"services:\n  - {name: a, dockerfile: ../Dockerfile, path: a, port: 1, health: /h}", `dockerfile "../Dockerfile" must name a file inside the service's path "a"`},
		{"services:\n  - {name: a, dockerfile: /Dockerfile, path: a, port: 1, health: /h}", `must name a file inside`},
		{"services:\n  - {name: a, dockerfile: ., path: a, port: 1, health: /h}", `must name a file inside`},
		{"services:\n  - {name: a, language: rust, target: runtime, path: a, port: 1, health: /h}", "target only applies to a service built from its Dockerfile"},
		{"services:\n  - {name: a, language: rust, secrets: [x], path: a, port: 1, health: /h}", "secrets only applies to a service built from its Dockerfile"},
		{"services:\n  - {name: a, language: rust, build-args: {A: b}, path: a, port: 1, health: /h}", "build-args only applies"},
		{"services:\n  - {name: a, dockerfile: Dockerfile, build-args: {SOURCE_DATE_EPOCH: '1'}, path: a, port: 1, health: /h}", "build-args: SOURCE_DATE_EPOCH is set by the pipeline"},
		{"services:\n  - {name: a, dockerfile: Dockerfile, build-args: {TARGETARCH: x}, path: a, port: 1, health: /h}", "TARGETARCH is set by the pipeline"},
		{"services:\n  - {name: a, dockerfile: Dockerfile, build-args: {'A-B': x}, path: a, port: 1, health: /h}", `"A-B" is not a build argument name`},
		{"services:\n  - {name: a, dockerfile: Dockerfile, secrets: [npm_token, npm_token], path: a, port: 1, health: /h}", `secrets: "npm_token" is listed twice`},
		{"services:\n  - {name: a, dockerfile: Dockerfile, secrets: [../x], path: a, port: 1, health: /h}", `secrets: "../x" is not a secret id`},
		{"services:\n  - {name: a, language: rust, command: x, path: a, port: 1, health: /h}", "command applies to python services (a Rust image runs its binary"},
		{"services:\n  - {name: a, dockerfile: Dockerfile, command: x, path: a, port: 1, health: /h}", "a Dockerfile service starts as its Dockerfile's ENTRYPOINT and CMD say"},
		{"services:\n  - {name: a, language: python, command: [], path: a, port: 1, health: /h}", "command is empty"},
		{"services:\n  - {name: a, language: python, command: 'sh -c \"x y\"', path: a, port: 1, health: /h}", "write the command as a list"},
		{"services:\n  - {name: a, language: python, command: {a: b}, path: a, port: 1, health: /h}", "command must be a line or a list"},
		{"services:\n  - {name: a, language: python, binary: x, path: a, port: 1, health: /h}", "binary, package, features and system-packages apply to rust services"},
		{"services:\n  - {name: a, dockerfile: Dockerfile, features: [x], path: a, port: 1, health: /h}", "binary, package, features and system-packages apply to rust services"},
		{"services:\n  - {name: a, language: rust, binary: 'a b', path: a, port: 1, health: /h}", `binary "a b" is not a cargo target`},
		{"services:\n  - {name: a, language: rust, package: '--all', path: a, port: 1, health: /h}", `package "--all" is not a cargo`},
		{"services:\n  - {name: a, language: rust, features: ['tls;rm'], path: a, port: 1, health: /h}", `features: "tls;rm" is not a cargo feature`},
		{"services:\n  - {name: a, language: rust, system-packages: ['libssl-dev:arm64'], path: a, port: 1, health: /h}", `system-packages: "libssl-dev:arm64" is not a Debian package name`},
		{"services:\n  - {name: a, language: python, system-packages: [libpq-dev], path: a, port: 1, health: /h}", "system-packages apply to rust services"},
		{"services:\n  - {name: a, language: rust, path: a, port: 1}", `services[0] "a": no health check: give health: /health`},
		{"services:\n  - {name: a, language: rust, path: a, port: 1, health: /h, health-command: [x]}", "give either health (an HTTP path the pipeline probes) or health-command"},
		{"services:\n  - {name: a, language: rust, path: a, port: 1, health-command: []}", "health-command is empty"},
		{"services:\n  - {name: a, language: rust, path: a, port: 1, health: '/h x'}", `health "/h x" must be an HTTP path starting with / (for a command, use health-command)`},
	} {
		_, err := ParseManifest([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\n  error %v, want it to mention %q", c.yaml, err, c.want)
		}
	}
}

func TestDockerfileService(t *testing.T) {
	m, err := ParseManifest([]byte(`
services:
  - name: web
    path: web
    dockerfile: docker/Dockerfile
    target: runtime
    build-args: {NODE_ENV: production}
    secrets: [npm_token]
    port: 8080
    health: /
  - name: api
    path: api
    dockerfile: Dockerfile
    secrets: [pip_conf, npm_token]
    port: 8000
    health: /health
`))
	if err != nil {
		t.Fatal(err)
	}
	web := m.Services[0]
	if web.Builder() != DockerfileBuilder || web.Dockerfile != "docker/Dockerfile" || web.Target != "runtime" || web.BuildArgs["NODE_ENV"] != "production" {
		t.Fatalf("parsed %+v", web)
	}
	if got := SecretIDs(m.Services); strings.Join(got, ",") != "npm_token,pip_conf" {
		t.Fatalf("SecretIDs = %v, want each id once, sorted", got)
	}
	if Default().Services[0].Builder() != "rust" {
		t.Fatal("a native service's builder is its language")
	}
}

func TestRustWorkspaceFields(t *testing.T) {
	m, err := ParseManifest([]byte(`
services:
  - {name: api, language: rust, path: ., package: api-server, binary: api, features: [tls, serde/derive], system-packages: [libssl-dev, zlib1g-dev], port: 8080, health: /health}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Services[0].Cargo; c.Package != "api-server" || c.Binary != "api" || strings.Join(c.Features, ",") != "tls,serde/derive" ||
		strings.Join(c.SystemPackages, ",") != "libssl-dev,zlib1g-dev" {
		t.Fatalf("parsed %+v", c)
	}
}

func TestPythonCommand(t *testing.T) {
	m, err := ParseManifest([]byte(`
services:
  - {name: a, language: python, path: a, port: 8000, health: /, command: uvicorn main:app --host 0.0.0.0 --port 8000}
  - {name: b, language: python, path: b, port: 8000, health: /, command: [python3, "my app.py"]}
  - {name: c, language: python, path: c, port: 8000, health: /}
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"uvicorn|main:app|--host|0.0.0.0|--port|8000", "python3|my app.py", ""} {
		if got := strings.Join(m.Services[i].Command, "|"); got != want {
			t.Errorf("service %d: command %q, want %q", i, got, want)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	m, err := ParseManifest([]byte(`
services:
  - {name: web, language: nextjs, path: web, port: 3000, health: '/api/health?deep=1'}
  - {name: worker, dockerfile: Dockerfile, path: worker, port: 9000, health-command: /bin/worker --ping}
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]string{
		{ProbePath, "http://127.0.0.1:3000/api/health?deep=1"},
		{"/bin/worker", "--ping"},
	} {
		if got := m.Services[i].Healthcheck(); !slices.Equal(got, want) {
			t.Errorf("%s: Healthcheck() = %q, want %q", m.Services[i].Name, got, want)
		}
	}
}

func TestDefaultManifestIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSelect(t *testing.T) {
	m := Default()
	all, _ := m.Select(nil)
	if len(all) != 3 {
		t.Fatalf("no names selects %d services, want 3", len(all))
	}
	one, err := m.Select([]string{"python-ai-service"})
	if err != nil || len(one) != 1 || one[0].Language != "python" {
		t.Fatalf("Select(python-ai-service) = %+v, %v", one, err)
	}
	_, err = m.Select([]string{"rust-core-engine", "nope"})
	if err == nil || !strings.Contains(err.Error(), `unknown service "nope"`) || !strings.Contains(err.Error(), "nextjs-ui-dashboard") {
		t.Fatalf("unknown service error = %v", err)
	}
}

func TestParsePlatforms(t *testing.T) {
	got, err := ParsePlatforms(" linux/arm64, linux/amd64,linux/arm64")
	if err != nil || strings.Join(got, ",") != "linux/arm64,linux/amd64" {
		t.Fatalf("got %v, %v", got, err)
	}
	for in, want := range map[string]string{
		"linux/s390x":               `unsupported platform "linux/s390x"`,
		"windows/amd64,linux/amd64": `unsupported platform "windows/amd64"`,
		"":                          "no platform given",
		" , ":                       "no platform given",
	} {
		if _, err := ParsePlatforms(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePlatforms(%q) error %v, want %q", in, err, want)
		}
	}
}

func TestNeededFiles(t *testing.T) {
	for _, c := range []struct {
		s    Service
		want string
	}{
		{Service{Language: "rust"}, "Cargo.toml,Cargo.lock"},
		{Service{Language: "nextjs"}, "package.json,package-lock.json"},
		{Service{Language: "python"}, ""},
		{Service{Docker: Docker{Dockerfile: "build/Dockerfile"}}, "build/Dockerfile"},
	} {
		var got []string
		for _, n := range c.s.NeededFiles() {
			got = append(got, n.File)
			if n.Fix == "" {
				t.Errorf("%s: no advice for a missing %s", c.s.Builder(), n.File)
			}
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("%s needs %v, want %s", c.s.Builder(), got, c.want)
		}
	}
}
