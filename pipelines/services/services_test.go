package services

import (
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
	} {
		_, err := ParseManifest([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\n  error %v, want it to mention %q", c.yaml, err, c.want)
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
