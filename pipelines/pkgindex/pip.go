// Package pkgindex checks the package indexes a build is told to use instead
// of the public ones (a company mirror, an air-gapped machine's own index)
// and turns them into the settings the package managers read.
//
// URLs are recorded and logged as given, so they must not carry credentials:
// those come as a secret and reach the package manager without passing
// through a URL, an argument or a layer. Errors name build-all's flags:
// they are this package's only front end.
package pkgindex

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Pip is where pip looks for packages: pip's --index-url, --extra-index-url
// and --find-links, one flag of build-all each.
type Pip struct {
	IndexURL       string
	ExtraIndexURLs []string
	FindLinks      []string
	// WithCredentials: a user:password secret is given, for every host above.
	WithCredentials bool
}

// IsZero: pip uses its defaults (PyPI, or what the project's own pip.conf
// would say).
func (p Pip) IsZero() bool {
	return p.IndexURL == "" && len(p.ExtraIndexURLs) == 0 && len(p.FindLinks) == 0 && !p.WithCredentials
}

// Check returns one error naming the flag of every URL that is not usable.
func (p Pip) Check() error {
	var errs []error
	check := func(flag, raw string) {
		if _, err := parse(raw, "--pip-credentials"); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", flag, redact(raw), err))
		}
	}
	if p.IndexURL != "" {
		check("--pip-index-url", p.IndexURL)
	}
	for _, u := range p.ExtraIndexURLs {
		check("--pip-extra-index-url", u)
	}
	for _, u := range p.FindLinks {
		check("--pip-find-links", u)
	}
	if p.WithCredentials && p.IndexURL == "" && len(p.ExtraIndexURLs) == 0 && len(p.FindLinks) == 0 {
		errs = append(errs, errors.New("--pip-credentials was given without --pip-index-url, --pip-extra-index-url or --pip-find-links: name the index they are for"))
	}
	return errors.Join(errs...)
}

// Env is pip's configuration as environment variables (pip reads PIP_<OPTION>;
// lists are space-separated). Plain-HTTP hosts are marked trusted, as pip
// otherwise ignores them: naming an http:// index is the caller's choice.
func (p Pip) Env() map[string]string {
	env := map[string]string{}
	if p.IndexURL != "" {
		env["PIP_INDEX_URL"] = p.IndexURL
	}
	if len(p.ExtraIndexURLs) > 0 {
		env["PIP_EXTRA_INDEX_URL"] = strings.Join(p.ExtraIndexURLs, " ")
	}
	if len(p.FindLinks) > 0 {
		env["PIP_FIND_LINKS"] = strings.Join(p.FindLinks, " ")
	}
	var trusted []string
	for _, u := range p.URLs() {
		if pu, err := parse(u, ""); err == nil && pu.Scheme == "http" && !slices.Contains(trusted, pu.Host) {
			trusted = append(trusted, pu.Host)
		}
	}
	if len(trusted) > 0 {
		env["PIP_TRUSTED_HOST"] = strings.Join(trusted, " ")
	}
	return env
}

// Hosts are the host names (without port, as a netrc file names them) the
// credentials are for.
func (p Pip) Hosts() []string {
	var hosts []string
	for _, u := range p.URLs() {
		if pu, err := parse(u, ""); err == nil && !slices.Contains(hosts, pu.Hostname()) {
			hosts = append(hosts, pu.Hostname())
		}
	}
	return hosts
}

// URLs are every index and page pip is pointed at, as given.
func (p Pip) URLs() []string {
	var all []string
	if p.IndexURL != "" {
		all = append(all, p.IndexURL)
	}
	return append(append(all, p.ExtraIndexURLs...), p.FindLinks...)
}

// parse accepts an absolute http(s) URL without credentials, which belong
// in the secret flag credFlag.
func parse(raw, credFlag string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("give an http:// or https:// URL (the build runs in the engine: a path of this machine is not there)")
	case u.Host == "":
		return nil, errors.New("the URL names no host")
	case u.User != nil:
		return nil, fmt.Errorf("the URL carries credentials, and URLs are logged and recorded: pass them as a secret with %s instead", credFlag)
	case strings.ContainsAny(raw, " \t\n"):
		return nil, errors.New("a URL has no spaces")
	}
	return u, nil
}

// redact hides the password of a URL in an error about it.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return raw
}
