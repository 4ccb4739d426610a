package pkgindex

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestPipEnv(t *testing.T) {
	p := Pip{IndexURL: "http://10.0.0.5:8080/simple/", ExtraIndexURLs: []string{"https://nexus.example.com/repository/pypi/simple", "https://pypi.org/simple"},
		FindLinks: []string{"http://10.0.0.5:8080/wheels/"}}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"PIP_INDEX_URL":       "http://10.0.0.5:8080/simple/",
		"PIP_EXTRA_INDEX_URL": "https://nexus.example.com/repository/pypi/simple https://pypi.org/simple",
		"PIP_FIND_LINKS":      "http://10.0.0.5:8080/wheels/",
		// Only the plain-HTTP host, once, with its port.
		"PIP_TRUSTED_HOST": "10.0.0.5:8080",
	}
	if got := p.Env(); !maps.Equal(got, want) {
		t.Errorf("Env() = %v\nwant %v", got, want)
	}
	if got := p.Hosts(); !slices.Equal(got, []string{"10.0.0.5", "nexus.example.com", "pypi.org"}) {
		t.Errorf("Hosts() = %v", got)
	}
	if (Pip{}).Env()["PIP_INDEX_URL"] != "" || !(Pip{}).IsZero() || p.IsZero() {
		t.Error("the zero Pip should leave pip as it is")
	}
}

func TestPipCheck(t *testing.T) {
	for _, c := range []struct {
		p    Pip
		want []string
	}{
		{Pip{IndexURL: "https://alice:s3cr3t@nexus.example.com/simple"}, []string{"--pip-index-url https://alice:xxxxx@nexus.example.com/simple: the URL carries credentials", "--pip-credentials"}},
		{Pip{ExtraIndexURLs: []string{"./wheels"}}, []string{"--pip-extra-index-url ./wheels: give an http:// or https:// URL"}},
		{Pip{FindLinks: []string{"https://"}}, []string{"--pip-find-links https://: the URL names no host"}},
		{Pip{WithCredentials: true}, []string{"--pip-credentials was given without --pip-index-url"}},
		{Pip{IndexURL: "ftp://x/simple", ExtraIndexURLs: []string{"http://ok/simple", "http://a b/"}}, []string{"--pip-index-url ftp://x/simple", "--pip-extra-index-url http://a b/"}},
	} {
		err := c.p.Check()
		if err == nil {
			t.Errorf("%+v: no error", c.p)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q does not say %q", c.p, err, w)
			}
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("the error repeats the password: %v", err)
		}
	}
}

func TestNpm(t *testing.T) {
	n := Npm{Registry: "http://10.0.0.5:4873/repository/npm", WithToken: true}
	if err := n.Check(); err != nil {
		t.Fatal(err)
	}
	if got := n.Env()["npm_config_registry"]; got != "http://10.0.0.5:4873/repository/npm" {
		t.Errorf("registry = %q", got)
	}
	if k, err := n.AuthKey(); err != nil || k != "//10.0.0.5:4873/repository/npm/" {
		t.Errorf("AuthKey() = %q, %v", k, err)
	}
	// A token alone is for the public registry (private packages there).
	if k, err := (Npm{WithToken: true}).AuthKey(); err != nil || k != "//registry.npmjs.org/" {
		t.Errorf("AuthKey() of the default registry = %q, %v", k, err)
	}
	if len((Npm{}).Env()) != 0 {
		t.Error("no registry given should leave npm's (and the project's .npmrc) as they are")
	}
	err := Npm{Registry: "https://bob:tok@npm.example.com/"}.Check()
	if err == nil || !strings.Contains(err.Error(), "--npm-registry https://bob:xxxxx@npm.example.com/: the URL carries credentials") ||
		!strings.Contains(err.Error(), "--npm-token") || strings.Contains(err.Error(), "tok@") {
		t.Errorf("a registry URL with a token: %v", err)
	}
}
