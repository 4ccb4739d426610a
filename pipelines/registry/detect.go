// Package registry knows the container registries bot-core publishes to: it
// recognises a registry prefix (GHCR, Docker Hub, ECR, Artifact Registry,
// GCR, ACR or any other distribution-API registry), turns registry errors
// into one sentence with the next step, and holds the registry-side logic of
// the botcore CLI (versions, inspect, cleanup). Finding credentials is the
// CLI's own business (cmd/botcore/internal/credentials), so the cloud SDKs
// it needs stay out of this module, which the Dagger engine resolves.
//
// Every registry operation goes through go-containerregistry; nothing here
// speaks the registry HTTP API by hand.
package registry

import (
	"fmt"
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/bot-core/delivery/pipelines/services"
	"github.com/google/go-containerregistry/pkg/name"
)

// Kind is the family of a registry; it decides how credentials are found and
// which facts Detect extracts.
type Kind string

// The kinds Detect recognises.
const (
	KindGHCR      Kind = "ghcr"
	KindDockerHub Kind = "dockerhub"
	KindECR       Kind = "ecr"
	KindGAR       Kind = "gar"
	KindGCR       Kind = "gcr"
	KindACR       Kind = "acr"
	KindGeneric   Kind = "generic"
)

// DockerHubRegistry is the host go-containerregistry (and docker) use for
// Docker Hub; "docker.io", "index.docker.io" and "registry-1.docker.io" all
// normalise to it.
const DockerHubRegistry = name.DefaultRegistry

// Info is what Detect learns from a registry prefix. Each service is
// published at Registry/Repository/<service>.
type Info struct {
	Kind Kind `json:"kind"`
	// Registry is the lower-cased host with an optional port, e.g.
	// "ghcr.io" or "harbor.acme.internal:8443".
	Registry string `json:"registry"`
	// Repository is the path under the host, e.g. "acme/bot-core"; it may be
	// empty for kinds whose repositories can live at the root (ECR, ACR,
	// generic registries).
	Repository string `json:"repository"`
	// Region is the AWS region of an ECR registry.
	Region string `json:"region,omitempty"`
	// Account is the AWS account id (ECR), the GitHub owner (GHCR) or the
	// Docker Hub namespace.
	Account string `json:"account,omitempty"`
	// Project is the Google Cloud project (GCR, Artifact Registry).
	Project string `json:"project,omitempty"`
	// Location is the Artifact Registry location ("europe", "us-central1")
	// or the GCR multi-region ("us", "eu", "asia").
	Location string `json:"location,omitempty"`
	// RegistryName is the registry's own name: the ACR registry name
	// ("acme" in acme.azurecr.io) or the Artifact Registry repository.
	RegistryName string `json:"registry_name,omitempty"`
	// Insecure is true when plain HTTP is allowed, which is only the case for
	// loopback registries (localhost, 127.0.0.0/8, [::1]).
	Insecure bool `json:"insecure"`
	// Warnings are facts that do not stop Detect but will likely fail later.
	Warnings []string `json:"warnings,omitempty"`
}

// Prefix is the normalised registry prefix, e.g. "ghcr.io/acme/bot-core".
func (i Info) Prefix() string {
	if i.Repository == "" {
		return i.Registry
	}
	return i.Registry + "/" + i.Repository
}

// Repo returns the repository of one service under the prefix.
func (i Info) Repo(service string) (name.Repository, error) {
	// Checked before joining: path.Join would turn "../x" into a sibling
	// repository of the prefix.
	if err := services.ValidateName(service); err != nil {
		return name.Repository{}, err
	}
	opts := []name.Option{name.StrictValidation}
	if i.Insecure {
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(path.Join(i.Prefix(), service), opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("invalid service name %q: a service is one lower-case repository path component such as rust-core-engine", service)
	}
	return repo, nil
}

// Reg returns the registry itself, for authentication and login.
func (i Info) Reg() (name.Registry, error) {
	opts := []name.Option{name.StrictValidation}
	if i.Insecure {
		opts = append(opts, name.Insecure)
	}
	return name.NewRegistry(i.Registry, opts...)
}

const validExample = "give a repository prefix such as ghcr.io/acme/bot-core, docker.io/acme or localhost:5000/bot-core"

func invalid(ref, format string, args ...any) error {
	return fmt.Errorf("invalid registry reference %q: %s; %s", ref, fmt.Sprintf(format, args...), validExample)
}

var (
	// One path component as the distribution spec allows it.
	pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	hostLabel     = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$`)
	ecrHost       = regexp.MustCompile(`^([0-9]{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$`)
	garHost       = regexp.MustCompile(`^([a-z0-9-]+)-docker\.pkg\.dev$`)
	gcrHost       = regexp.MustCompile(`^(?:(us|eu|asia)\.)?gcr\.io$`)
	acrHost       = regexp.MustCompile(`^([a-z0-9]+)\.azurecr\.(?:io|cn|us)$`)
)

// maxNameLen is the longest repository name (host included) docker accepts.
const maxNameLen = 255

// Detect parses a registry prefix and recognises its kind. It follows
// docker's reference rules: the first component is a host when it contains
// "." or ":" or is "localhost" (otherwise Docker Hub is implied), the host is
// lower-cased, and the path must be lower-case distribution path components.
// A tag or digest is rejected (a prefix is not an image), as are empty
// references, URL schemes and characters a repository name cannot hold.
// Trailing slashes are dropped.
func Detect(ref string) (Info, error) {
	raw := strings.TrimSpace(ref)
	if raw == "" {
		return Info{}, invalid(ref, "the reference is empty")
	}
	if i := strings.Index(raw, "://"); i >= 0 {
		return Info{}, invalid(ref, "drop the %q scheme, a registry reference names no protocol", raw[:i+3])
	}
	if strings.Contains(raw, "@") {
		return Info{}, invalid(ref, "it has a digest, but a prefix names repositories, not an image")
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return Info{}, invalid(ref, "it contains spaces, control or non-ASCII characters")
	}
	raw = strings.TrimRight(raw, "/")
	if raw == "" {
		return Info{}, invalid(ref, "the reference is only slashes")
	}

	parts := strings.Split(raw, "/")
	var host string
	first := parts[0]
	if looksLikeHost(first, len(parts) == 1) {
		h, err := parseHost(ref, first)
		if err != nil {
			return Info{}, err
		}
		host, parts = h, parts[1:]
	} else {
		host = DockerHubRegistry
	}
	for n, p := range parts {
		switch {
		case p == "":
			return Info{}, invalid(ref, "it has an empty path component (\"//\")")
		case n == len(parts)-1 && strings.Contains(p, ":"):
			return Info{}, invalid(ref, "it has a tag (%q), but a prefix names repositories, not an image", p[strings.Index(p, ":"):])
		case pathComponent.MatchString(p):
		case pathComponent.MatchString(strings.ToLower(p)):
			return Info{}, invalid(ref, "the repository path must be lower-case, but %q has upper-case letters", p)
		default:
			return Info{}, invalid(ref, "path component %q may only hold lower-case letters, digits and single separators (. _ __ -) between them", p)
		}
	}
	repoPath := strings.Join(parts, "/")
	if n := len(host) + 1 + len(repoPath); n > maxNameLen {
		return Info{}, invalid(ref, "it is %d characters long, but a repository name holds at most %d", n, maxNameLen)
	}

	info := Info{Registry: host, Repository: repoPath, Insecure: isLoopback(host)}
	if err := classify(ref, &info, parts); err != nil {
		return Info{}, err
	}
	// Final check with go-containerregistry's own parser, with a service
	// appended, so that every prefix Detect accepts yields valid names.
	if _, err := info.Repo("probe"); err != nil {
		return Info{}, invalid(ref, "go-containerregistry rejects it")
	}
	return info, nil
}

// looksLikeHost applies docker's rule for the first component; a lone
// component is a host only if it cannot be read as a Docker Hub name with a
// tag ("acme:5000" is acme with tag 5000, as docker reads it).
func looksLikeHost(first string, alone bool) bool {
	if strings.HasPrefix(first, "[") {
		return true
	}
	hostPart := first
	if i := strings.LastIndex(first, ":"); i >= 0 {
		hostPart = first[:i]
	}
	lower := strings.ToLower(hostPart)
	if alone {
		return strings.Contains(hostPart, ".") || lower == "localhost"
	}
	return strings.ContainsAny(first, ".:") || lower == "localhost"
}

// parseHost validates host[:port] or [ipv6][:port] and lower-cases it.
func parseHost(ref, h string) (string, error) {
	h = strings.ToLower(h)
	hostname, port, hasPort := h, "", false
	if strings.HasPrefix(h, "[") {
		end := strings.Index(h, "]")
		if end < 0 {
			return "", invalid(ref, "the IPv6 host %q has no closing bracket", h)
		}
		hostname = h[1:end]
		switch rest := h[end+1:]; {
		case rest == "":
		case strings.HasPrefix(rest, ":"):
			port, hasPort = rest[1:], true
		default:
			return "", invalid(ref, "unexpected %q after the IPv6 host", rest)
		}
		if ip := net.ParseIP(hostname); ip == nil || ip.To4() != nil {
			return "", invalid(ref, "%q is not an IPv6 address", hostname)
		}
	} else {
		if i := strings.LastIndex(h, ":"); i >= 0 {
			hostname, port, hasPort = h[:i], h[i+1:], true
		}
		for _, label := range strings.Split(hostname, ".") {
			if !hostLabel.MatchString(label) {
				return "", invalid(ref, "the host %q is not a valid host name", hostname)
			}
		}
	}
	if hostname == "localhost" && !hasPort {
		// go-containerregistry reads a bare "localhost/..." as a Docker Hub
		// name, so the port must be explicit.
		return "", invalid(ref, "give localhost's port explicitly, e.g. localhost:5000")
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return "", invalid(ref, "the port %q is not a number from 1 to 65535", port)
		}
	}
	switch h {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return DockerHubRegistry, nil
	}
	return h, nil
}

func isLoopback(host string) bool {
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
	}
	hostname = strings.TrimSuffix(strings.TrimPrefix(hostname, "["), "]")
	if hostname == "localhost" {
		return true
	}
	ip := net.ParseIP(hostname)
	return ip != nil && ip.IsLoopback()
}

// classify sets the kind and the kind's facts, and rejects prefixes the
// kind cannot hold.
func classify(ref string, info *Info, parts []string) error {
	hostname := info.Registry
	if h, _, err := net.SplitHostPort(info.Registry); err == nil {
		hostname = h
	}
	need := func(n int, what, example string) error {
		if len(parts) < n {
			return invalid(ref, "%s needs %s, e.g. %s", info.Registry, what, example)
		}
		return nil
	}
	switch {
	case hostname == "ghcr.io":
		info.Kind = KindGHCR
		if err := need(1, "an owner", "ghcr.io/acme/bot-core"); err != nil {
			return err
		}
		info.Account = parts[0]
	case info.Registry == DockerHubRegistry:
		info.Kind = KindDockerHub
		if err := need(1, "a namespace", "docker.io/acme"); err != nil {
			return err
		}
		info.Account = parts[0]
		if len(parts) > 1 {
			info.Warnings = append(info.Warnings, fmt.Sprintf("Docker Hub repositories are <namespace>/<name>, so %s/<service> has one path level too many and Docker Hub will refuse pushes; use docker.io/%s as the prefix", info.Prefix(), parts[0]))
		}
	case ecrHost.MatchString(hostname):
		m := ecrHost.FindStringSubmatch(hostname)
		info.Kind, info.Account, info.Region = KindECR, m[1], m[2]
	case garHost.MatchString(hostname):
		info.Kind = KindGAR
		info.Location = garHost.FindStringSubmatch(hostname)[1]
		if err := need(2, "a project and a repository", hostname+"/my-project/my-repo"); err != nil {
			return err
		}
		info.Project, info.RegistryName = parts[0], parts[1]
	case gcrHost.MatchString(hostname):
		info.Kind = KindGCR
		info.Location = gcrHost.FindStringSubmatch(hostname)[1]
		if info.Location == "" {
			info.Location = "us"
		}
		if err := need(1, "a project", hostname+"/my-project"); err != nil {
			return err
		}
		info.Project = parts[0]
	case acrHost.MatchString(hostname):
		info.Kind = KindACR
		info.RegistryName = acrHost.FindStringSubmatch(hostname)[1]
	default:
		info.Kind = KindGeneric
	}
	return nil
}
