package pkgindex

import (
	"strings"
	"testing"
)

func TestCargo(t *testing.T) {
	for _, c := range []struct {
		cargo Cargo
		want  string
	}{
		{Cargo{}, ""},
		{Cargo{Registry: "sparse+https://cargo.example.com/index/"}, ""},
		{Cargo{Registry: "http://10.0.0.5:8080/api/cargo/crates-io/index", WithToken: true}, ""},
		{Cargo{WithToken: true}, "--cargo-token was given without --cargo-registry"},
		{Cargo{Registry: "https://github.com/rust-lang/crates.io-index.git"}, "git indexes are not supported"},
		{Cargo{Registry: "registry+https://example.com/index"}, "git indexes are not supported"},
		{Cargo{Registry: "sparse+https://bob:s3cret@cargo.example.com/index/"}, "--cargo-registry https://bob:xxxxx@cargo.example.com/index/: the URL carries credentials"},
		{Cargo{Registry: "/srv/index"}, "give an http:// or https:// URL"},
	} {
		err := c.cargo.Check()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: Check() = %v, want %q", c.cargo, err, c.want)
		}
	}
	if cfg := (Cargo{Registry: "http://10.0.0.5:8080/index"}).Config(); strings.Contains(cfg, "credential-providers") {
		t.Errorf("Config() without a token names a credential provider: %q", cfg)
	}
	cfg := Cargo{Registry: "http://10.0.0.5:8080/index", WithToken: true}.Config()
	for _, want := range []string{"[registries.botcore-mirror]\nindex = \"sparse+http://10.0.0.5:8080/index/\"\n", "[source.crates-io]\nreplace-with = \"botcore-mirror\"\n",
		"[registry]\nglobal-credential-providers = [\"cargo:token\"]\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("Config() = %q, want it to hold %q", cfg, want)
		}
	}
}
