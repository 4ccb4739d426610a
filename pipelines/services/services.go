// Package plan turns a release request (services manifest, platforms,
// version, registry) into a validated plan before anything is built, so bad
// input fails with one clear error and nothing half-done is left behind.
package services

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
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
	Name string `yaml:"name" json:"name"`
	// Language picks a native builder; a service with a Dockerfile has none.
	Language string `yaml:"language,omitempty" json:"language,omitempty"`
	// Path of the service's source, relative to the source root.
	Path string `yaml:"path" json:"path"`
	Port int    `yaml:"port" json:"port"`
	// Health is the HTTP path that answers below 400 when the service is
	// healthy; the pipeline puts a small static prober into the image for
	// it (ProbePath). HealthCommand instead is a command of the image's own
	// that exits 0 when healthy. A service gives one of the two.
	Health        string  `yaml:"health,omitempty" json:"health,omitempty"`
	HealthCommand Command `yaml:"health-command,omitempty" json:"healthCommand,omitempty"`
	// Command starts a Python service (default: python3 -m app.main).
	Command Command `yaml:"command,omitempty" json:"command,omitempty"`
	Cargo   `yaml:",inline"`
	Docker  `yaml:",inline"`
}

// Cargo says what a Rust service's image ships when its crate or workspace
// has more than one binary, and how to build it.
type Cargo struct {
	// Binary is the executable to ship (cargo build --bin).
	Binary string `yaml:"binary,omitempty" json:"binary,omitempty"`
	// Package is the workspace member to build (cargo build --package);
	// the service's path is then the workspace root.
	Package  string   `yaml:"package,omitempty" json:"package,omitempty"`
	Features []string `yaml:"features,omitempty" json:"features,omitempty"`
	// SystemPackages are the Debian packages of the C libraries the crate
	// links (libssl-dev), installed for the target architecture; the
	// shared libraries the binary then needs go into the runtime with it.
	SystemPackages []string `yaml:"system-packages,omitempty" json:"systemPackages,omitempty"`
}

// Command is a program and its arguments, written in services.yaml as a list
// or as one line split at spaces ("uvicorn main:app --host 0.0.0.0").
type Command []string

func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if strings.ContainsAny(n.Value, `"'\$`+"`") {
			return fmt.Errorf("line %d: command %q: quotes, $ and backslashes are not interpreted (no shell runs it): write the command as a list, one argument per item", n.Line, n.Value)
		}
		*c = strings.Fields(n.Value)
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return fmt.Errorf("line %d: command must be a line or a list of arguments", n.Line)
	}
	*c = list
	return nil
}

// Docker is how a service with its own Dockerfile is built: the engine runs
// the Dockerfile with the service's directory as its context.
type Docker struct {
	// Dockerfile is relative to the service's path.
	Dockerfile string `yaml:"dockerfile,omitempty" json:"dockerfile,omitempty"`
	// Target is the stage to build; default the last.
	Target    string            `yaml:"target,omitempty" json:"target,omitempty"`
	BuildArgs map[string]string `yaml:"build-args,omitempty" json:"buildArgs,omitempty"`
	// Secrets are the ids the Dockerfile mounts (RUN --mount=type=secret,id=ID);
	// build-all is given each as a Dagger secret of that name.
	Secrets []string `yaml:"secrets,omitempty" json:"secrets,omitempty"`
}

// DockerfileBuilder is what Builder says of a service built from its Dockerfile.
const DockerfileBuilder = "dockerfile"

// Builder names how the service is built: its language, or "dockerfile".
func (s Service) Builder() string {
	if s.Dockerfile != "" {
		return DockerfileBuilder
	}
	return s.Language
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
		errs = append(errs, s.validateBuilder(where)...)
		if s.Path == "" || path.IsAbs(s.Path) || strings.HasPrefix(path.Clean(s.Path), "..") {
			errs = append(errs, fmt.Errorf("%s: path %q must be relative to the source root and stay inside it", where, s.Path))
		}
		if s.Port < 1 || s.Port > 65535 {
			errs = append(errs, fmt.Errorf("%s: port %d is not a TCP port", where, s.Port))
		}
		errs = append(errs, s.validateHealth(where)...)
	}
	return errors.Join(errs...)
}

func (s Service) validateHealth(where string) []error {
	switch {
	case s.HealthCommand != nil && s.Health != "":
		return []error{fmt.Errorf("%s: give either health (an HTTP path the pipeline probes) or health-command (a command in the image), not both", where)}
	case s.HealthCommand != nil:
		if len(s.HealthCommand) == 0 || s.HealthCommand[0] == "" {
			return []error{fmt.Errorf("%s: health-command is empty", where)}
		}
	case s.Health == "":
		return []error{fmt.Errorf("%s: no health check: give health: /health (an HTTP path answering below 400 when healthy) or health-command: [...] (a command in the image exiting 0)", where)}
	case !strings.HasPrefix(s.Health, "/") || strings.ContainsAny(s.Health, " \t\n#"):
		return []error{fmt.Errorf("%s: health %q must be an HTTP path starting with / (for a command, use health-command)", where, s.Health)}
	}
	return nil
}

// ProbePath is where the pipeline puts its HTTP prober in an image whose
// service declares a health path.
const ProbePath = "/usr/local/bin/botcore-probe"

// Healthcheck is the command the image declares as its health check, in
// exec form: the service's health-command, or the prober fetching its
// health path on its port.
func (s Service) Healthcheck() []string {
	if s.HealthCommand != nil {
		return slices.Clone(s.HealthCommand)
	}
	return []string{ProbePath, fmt.Sprintf("http://127.0.0.1:%d%s", s.Port, s.Health)}
}

// Names the pipeline sets itself: a build arg of that name would be ignored
// or fight the pipeline's value.
var reservedBuildArgs = []string{"SOURCE_DATE_EPOCH", "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
	"BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT"}

var (
	buildArgName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// BuildKit's secret ids end up as file names under /run/secrets.
	secretID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

// validateBuilder checks that exactly one way of building is declared, and
// that the Dockerfile settings only appear with a Dockerfile.
func (s Service) validateBuilder(where string) []error {
	if s.Dockerfile == "" {
		var errs []error
		if s.Command != nil && s.Language != "python" {
			errs = append(errs, fmt.Errorf("%s: command applies to python services (a Rust image runs its binary, a Next.js image its server; a Dockerfile says its own CMD)", where))
		}
		if s.Command != nil && (len(s.Command) == 0 || s.Command[0] == "") {
			errs = append(errs, fmt.Errorf("%s: command is empty", where))
		}
		errs = append(errs, s.validateCargo(where)...)
		for field, set := range map[string]bool{"target": s.Target != "", "build-args": len(s.BuildArgs) > 0, "secrets": len(s.Secrets) > 0} {
			if set {
				errs = append(errs, fmt.Errorf("%s: %s only applies to a service built from its Dockerfile: add dockerfile: Dockerfile (relative to path)", where, field))
			}
		}
		slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		if !slices.Contains(Languages, s.Language) {
			errs = append(errs, fmt.Errorf("%s: language %q is not one of %s (or give dockerfile: to build from the service's own Dockerfile)", where, s.Language, strings.Join(Languages, ", ")))
		}
		return errs
	}
	var errs []error
	if s.Language != "" {
		errs = append(errs, fmt.Errorf("%s: give either language (a native builder) or dockerfile, not both", where))
	}
	if s.Command != nil {
		errs = append(errs, fmt.Errorf("%s: command applies to python services; a Dockerfile service starts as its Dockerfile's ENTRYPOINT and CMD say", where))
	}
	errs = append(errs, s.validateCargo(where)...)
	if d := path.Clean(s.Dockerfile); path.IsAbs(s.Dockerfile) || d == ".." || strings.HasPrefix(d, "../") || d == "." {
		errs = append(errs, fmt.Errorf("%s: dockerfile %q must name a file inside the service's path %q (the build context)", where, s.Dockerfile, s.Path))
	}
	for _, k := range slices.Sorted(maps.Keys(s.BuildArgs)) {
		switch {
		case !buildArgName.MatchString(k):
			errs = append(errs, fmt.Errorf("%s: build-args: %q is not a build argument name (letters, digits and _)", where, k))
		case slices.Contains(reservedBuildArgs, k):
			errs = append(errs, fmt.Errorf("%s: build-args: %s is set by the pipeline (--source-date-epoch, --platforms)", where, k))
		}
	}
	seen := map[string]bool{}
	for _, id := range s.Secrets {
		switch {
		case ValidateSecretID(id) != nil:
			errs = append(errs, fmt.Errorf("%s: secrets: %w", where, ValidateSecretID(id)))
		case seen[id]:
			errs = append(errs, fmt.Errorf("%s: secrets: %q is listed twice", where, id))
		}
		seen[id] = true
	}
	return errs
}

var (
	cargoName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)
	// debianPackage is Debian policy's package name (5.6.1), which also
	// keeps it a single shell word.
	debianPackage = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	cargoFeature  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*(/[A-Za-z0-9_][A-Za-z0-9_-]*)?$`)
)

// validateCargo checks the Rust-only fields: set only on Rust services, and
// each a name cargo accepts (they become cargo's command-line arguments).
func (s Service) validateCargo(where string) []error {
	c := s.Cargo
	if c.Binary == "" && c.Package == "" && c.Features == nil && c.SystemPackages == nil {
		return nil
	}
	if s.Language != "rust" || s.Dockerfile != "" {
		return []error{fmt.Errorf("%s: binary, package, features and system-packages apply to rust services", where)}
	}
	var errs []error
	for field, v := range map[string]string{"binary": c.Binary, "package": c.Package} {
		if v != "" && !cargoName.MatchString(v) {
			errs = append(errs, fmt.Errorf("%s: %s %q is not a cargo target or package name", where, field, v))
		}
	}
	for _, f := range c.Features {
		if !cargoFeature.MatchString(f) {
			errs = append(errs, fmt.Errorf("%s: features: %q is not a cargo feature (name or dependency/name)", where, f))
		}
	}
	for _, p := range c.SystemPackages {
		if !debianPackage.MatchString(p) {
			errs = append(errs, fmt.Errorf("%s: system-packages: %q is not a Debian package name (e.g. libssl-dev; the architecture is the target's, not given)", where, p))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

// ValidateSecretID checks that id can name a build secret.
func ValidateSecretID(id string) error {
	if !secretID.MatchString(id) {
		return fmt.Errorf("%q is not a secret id (letters, digits, . _ -)", id)
	}
	return nil
}

// SecretIDs are the build secrets the given services need, sorted, each once.
func SecretIDs(svcs []Service) []string {
	var ids []string
	for _, s := range svcs {
		for _, id := range s.Secrets {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return ids
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

// Needed is a file a service's builder cannot do without, relative to the
// service's path, and what to do when it is missing.
type Needed struct {
	File, Fix string
}

// NeededFiles are the files the service's builder needs, checked before
// anything is built so that a missing one is one clear error.
func (s Service) NeededFiles() []Needed {
	switch s.Builder() {
	case "rust":
		return []Needed{
			{"Cargo.toml", "the path must be the crate, or with package: the workspace root"},
			{"Cargo.lock", "the build is --locked, so that a release builds exactly the dependencies that were tested: run `cargo generate-lockfile` there and commit Cargo.lock"},
		}
	case "nextjs":
		return []Needed{
			{"package.json", "the path must be the Next.js app"},
			{"package-lock.json", "the build runs `npm ci`, which installs exactly the lockfile: run `npm install` there and commit package-lock.json"},
		}
	case DockerfileBuilder:
		return []Needed{{s.Dockerfile, "dockerfile: is relative to the service's path"}}
	}
	return nil
}
