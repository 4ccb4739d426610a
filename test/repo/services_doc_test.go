package repo_test

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	manifest "github.com/bot-core/delivery/pipelines/services"
)

// Every services.yaml shown in the docs parses as build-all reads it, and
// the field table names every field the parser knows.
func TestServicesDocExamples(t *testing.T) {
	doc := readFile(t, "docs/services.md")
	blocks := regexp.MustCompile("(?s)```yaml\n(services:.*?)```").FindAllStringSubmatch(doc, -1)
	if len(blocks) < 2 {
		t.Fatalf("docs/services.md shows %d services.yaml examples, want the native one and the Dockerfile one", len(blocks))
	}
	builders := map[string]bool{}
	for _, b := range blocks {
		m, err := manifest.ParseManifest([]byte(b[1]))
		if err != nil {
			t.Errorf("docs/services.md example does not parse: %v\n%s", err, b[1])
			continue
		}
		for _, s := range m.Services {
			builders[s.Builder()] = true
		}
	}
	for _, want := range append(manifest.Languages, manifest.DockerfileBuilder) {
		if !builders[want] {
			t.Errorf("docs/services.md has no example of a %s service", want)
		}
	}
	for _, field := range yamlFields(reflect.TypeFor[manifest.Service]()) {
		if !strings.Contains(doc, "| `"+field+"` |") {
			t.Errorf("docs/services.md's field table lacks `%s`", field)
		}
	}
}

// yamlFields are the keys a struct reads from YAML, inline structs' included.
func yamlFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" {
			out = append(out, yamlFields(f.Type)...)
		} else if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}
