// Package plan turns a release request (services manifest, platforms,
// version, registry) into a validated plan before anything is built, so bad
// input fails with one clear error and nothing half-done is left behind.
package services

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// ManifestFile is where the services manifest lives, relative to the source root.
const ManifestFile = "services.yaml"

// Languages the pipeline has a builder for.
var Languages = []string{"rust", "python", "nextjs"}

// SupportedPlatforms are the platforms every builder can produce.
var SupportedPlatforms = []string{"linux/amd64", "linux/arm64"}

// Service is one deployable image, declared once in services.yaml.
type Service struct {
	Name     string `yaml:"name" json:"name"`
	Language string `yaml:"language" json:"language"`
	// Path of the service's source, relative to the source root.
	Path   string `yaml:"path" json:"path"`
	Port   int    `yaml:"port" json:"port"`
	Health string `yaml:"health" json:"health"`
}

// Manifest lists the services of a repository.
type Manifest struct {
	Services []Service `yaml:"services" json:"services"`
}

// Default is the seed repository's layout: the three bot-core services at
// the source root.
func Default() Manifest {
	return Manifest{Services: []Service{
		{Name: "rust-core-engine", Language: "rust", Path: "rust-core-engine", Port: 8080, Health: "/health"},
		{Name: "python-ai-service", Language: "python", Path: "python-ai-service", Port: 8000, Health: "/health"},
		{Name: "nextjs-ui-dashboard", Language: "nextjs", Path: "nextjs-ui-dashboard", Port: 3000, Health: "/api/health"},
	}}
}

// A repository path component as the distribution spec allows it.
var serviceName = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// ValidateName checks that name can be a service: one lower-case
// repository path component. Service names are joined to registry prefixes
// and output directories, so "..", "a/b" or "" must never get that far: the
// CLI, the Dagger module and the registry package all check with this.
func ValidateName(name string) error {
	if !serviceName.MatchString(name) {
		return fmt.Errorf("invalid service name %q: a service is one lower-case repository path component such as rust-core-engine (letters, digits and single . _ - separators, no slashes)", name)
	}
	return nil
}

// ParseManifest reads services.yaml strictly: unknown keys are errors, so a
// typo does not silently drop a setting.
func ParseManifest(data []byte) (Manifest, error) {
	var m Manifest
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	return m, nil
}

// Validate checks every service and returns all problems at once.
func (m Manifest) Validate() error {
	if len(m.Services) == 0 {
		return errors.New("no services declared")
	}
	var errs []error
	seen := map[string]bool{}
	for i, s := range m.Services {
		where := fmt.Sprintf("services[%d] %q", i, s.Name)
		switch {
		case ValidateName(s.Name) != nil:
			errs = append(errs, fmt.Errorf("%s: name must be lower-case letters, digits and separators (a valid image repository name)", where))
		case seen[s.Name]:
			errs = append(errs, fmt.Errorf("%s: declared twice", where))
		}
		seen[s.Name] = true
		if !slices.Contains(Languages, s.Language) {
			errs = append(errs, fmt.Errorf("%s: language %q is not one of %s", where, s.Language, strings.Join(Languages, ", ")))
		}
		if s.Path == "" || path.IsAbs(s.Path) || strings.HasPrefix(path.Clean(s.Path), "..") {
			errs = append(errs, fmt.Errorf("%s: path %q must be relative to the source root and stay inside it", where, s.Path))
		}
		if s.Port < 1 || s.Port > 65535 {
			errs = append(errs, fmt.Errorf("%s: port %d is not a TCP port", where, s.Port))
		}
		if !strings.HasPrefix(s.Health, "/") {
			errs = append(errs, fmt.Errorf("%s: health %q must be an HTTP path starting with /", where, s.Health))
		}
	}
	return errors.Join(errs...)
}

// Select returns the named services in manifest order; no names means all.
func (m Manifest) Select(names []string) ([]Service, error) {
	if len(names) == 0 {
		return m.Services, nil
	}
	var out []Service
	for _, s := range m.Services {
		if slices.Contains(names, s.Name) {
			out = append(out, s)
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(m.Services, func(s Service) bool { return s.Name == n }) {
			return nil, fmt.Errorf("unknown service %q: known services are %s", n, strings.Join(m.Names(), ", "))
		}
	}
	return out, nil
}

// Names lists the services' names in manifest order.
func (m Manifest) Names() []string {
	var out []string
	for _, s := range m.Services {
		out = append(out, s.Name)
	}
	return out
}

// ParsePlatforms splits a comma-separated platform list ("linux/amd64,linux/arm64"),
// rejecting platforms no builder supports and duplicates.
func ParsePlatforms(list string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(SupportedPlatforms, p) {
			return nil, fmt.Errorf("unsupported platform %q: supported platforms are %s", p, strings.Join(SupportedPlatforms, ", "))
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no platform given: use one or more of %s", strings.Join(SupportedPlatforms, ", "))
	}
	return out, nil
}
