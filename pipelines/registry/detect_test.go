package registry

import (
	"reflect"
	"strings"
	"testing"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		ref  string
		want Info
	}{
		{"ghcr.io/acme/bot-core", Info{Kind: KindGHCR, Registry: "ghcr.io", Repository: "acme/bot-core", Account: "acme"}},
		{"GHCR.IO/acme/bot-core/", Info{Kind: KindGHCR, Registry: "ghcr.io", Repository: "acme/bot-core", Account: "acme"}},
		{"ghcr.io/acme//", Info{Kind: KindGHCR, Registry: "ghcr.io", Repository: "acme", Account: "acme"}},
		{"docker.io/acme", Info{Kind: KindDockerHub, Registry: "index.docker.io", Repository: "acme", Account: "acme"}},
		{"index.docker.io/acme", Info{Kind: KindDockerHub, Registry: "index.docker.io", Repository: "acme", Account: "acme"}},
		{"registry-1.docker.io/acme", Info{Kind: KindDockerHub, Registry: "index.docker.io", Repository: "acme", Account: "acme"}},
		{"acme", Info{Kind: KindDockerHub, Registry: "index.docker.io", Repository: "acme", Account: "acme"}},
		{"acme/bot-core", Info{Kind: KindDockerHub, Registry: "index.docker.io", Repository: "acme/bot-core", Account: "acme",
			Warnings: []string{"Docker Hub repositories are <namespace>/<name>, so index.docker.io/acme/bot-core/<service> has one path level too many and Docker Hub will refuse pushes; use docker.io/acme as the prefix"}}},
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com/bot-core", Info{Kind: KindECR, Registry: "123456789012.dkr.ecr.eu-west-1.amazonaws.com", Repository: "bot-core", Account: "123456789012", Region: "eu-west-1"}},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com", Info{Kind: KindECR, Registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com", Account: "123456789012", Region: "us-east-1"}},
		{"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/a/b", Info{Kind: KindECR, Registry: "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", Repository: "a/b", Account: "123456789012", Region: "us-gov-west-1"}},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/bot", Info{Kind: KindECR, Registry: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", Repository: "bot", Account: "123456789012", Region: "cn-north-1"}},
		{"12345.dkr.ecr.eu-west-1.amazonaws.com/bot", Info{Kind: KindGeneric, Registry: "12345.dkr.ecr.eu-west-1.amazonaws.com", Repository: "bot"}},
		{"europe-docker.pkg.dev/p/r", Info{Kind: KindGAR, Registry: "europe-docker.pkg.dev", Repository: "p/r", Project: "p", Location: "europe", RegistryName: "r"}},
		{"us-central1-docker.pkg.dev/my-proj/images/bot-core", Info{Kind: KindGAR, Registry: "us-central1-docker.pkg.dev", Repository: "my-proj/images/bot-core", Project: "my-proj", Location: "us-central1", RegistryName: "images"}},
		{"gcr.io/p", Info{Kind: KindGCR, Registry: "gcr.io", Repository: "p", Project: "p", Location: "us"}},
		{"eu.gcr.io/p/bot", Info{Kind: KindGCR, Registry: "eu.gcr.io", Repository: "p/bot", Project: "p", Location: "eu"}},
		{"acme.azurecr.io/bot-core", Info{Kind: KindACR, Registry: "acme.azurecr.io", Repository: "bot-core", RegistryName: "acme"}},
		{"acme.azurecr.io", Info{Kind: KindACR, Registry: "acme.azurecr.io", RegistryName: "acme"}},
		{"harbor.acme.internal:8443/bot", Info{Kind: KindGeneric, Registry: "harbor.acme.internal:8443", Repository: "bot"}},
		{"Harbor.Acme.Internal:8443/bot/nested/deep", Info{Kind: KindGeneric, Registry: "harbor.acme.internal:8443", Repository: "bot/nested/deep"}},
		{"localhost:5000/x", Info{Kind: KindGeneric, Registry: "localhost:5000", Repository: "x", Insecure: true}},
		{"localhost:5000", Info{Kind: KindGeneric, Registry: "localhost:5000", Insecure: true}},
		{"127.0.0.1:5000/x", Info{Kind: KindGeneric, Registry: "127.0.0.1:5000", Repository: "x", Insecure: true}},
		{"127.1.2.3:5000/x", Info{Kind: KindGeneric, Registry: "127.1.2.3:5000", Repository: "x", Insecure: true}},
		{"[::1]:5000/x", Info{Kind: KindGeneric, Registry: "[::1]:5000", Repository: "x", Insecure: true}},
		{"10.0.0.5:5000/x", Info{Kind: KindGeneric, Registry: "10.0.0.5:5000", Repository: "x"}},
		{"registry.example.com/a_b/c__d/e.f/g--h", Info{Kind: KindGeneric, Registry: "registry.example.com", Repository: "a_b/c__d/e.f/g--h"}},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := Detect(tt.ref)
			if err != nil {
				t.Fatalf("Detect(%q): %v", tt.ref, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Detect(%q)\n got %+v\nwant %+v", tt.ref, got, tt.want)
			}
			if _, err := got.Repo("rust-core-engine"); err != nil {
				t.Errorf("Repo: %v", err)
			}
		})
	}
}

func TestDetectErrors(t *testing.T) {
	tests := []struct{ ref, want string }{
		{"", "the reference is empty"},
		{"   ", "the reference is empty"},
		{"/", "only slashes"},
		{"ghcr.io/Acme/bot-core", `must be lower-case, but "Acme" has upper-case letters`},
		{"Acme/bot-core", `must be lower-case, but "Acme"`},
		{"ghcr.io/acme/bot-core:v1", `it has a tag (":v1")`},
		{"acme:latest", `it has a tag (":latest")`},
		{"acme:5000", `it has a tag (":5000")`},
		{"localhost:5000/x:1.0", `it has a tag (":1.0")`},
		{"ghcr.io/acme/bot-core@sha256:" + strings.Repeat("a", 64), "it has a digest"},
		{"https://ghcr.io/acme", `drop the "https://" scheme`},
		{"ghcr.io/acme bot", "spaces"},
		{"ghcr.io/acme/bot!core", `path component "bot!core"`},
		{"ghcr.io/acme//bot", `empty path component`},
		{"ghcr.io/-acme", `path component "-acme"`},
		{"ghcr.io", "ghcr.io needs an owner"},
		{"ghcr.io/", "ghcr.io needs an owner"},
		{"docker.io", "index.docker.io needs a namespace"},
		{"europe-docker.pkg.dev/p", "needs a project and a repository"},
		{"gcr.io/", "needs a project"},
		{"harbor.acme.internal:0/bot", `the port "0"`},
		{"harbor.acme.internal:99999/bot", `the port "99999"`},
		{"harbor.acme.internal:http/bot", `the port "http"`},
		{"harbor_acme.internal/bot", `the host "harbor_acme.internal"`},
		{"[::1/x", "no closing bracket"},
		{"localhost/x", "give localhost's port explicitly"},
		{"LOCALHOST/x", "give localhost's port explicitly"},
		{"[127.0.0.1]:5000/x", "is not an IPv6 address"},
		{"ghcr.io/" + strings.Repeat("a", 260), "at most 255"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			_, err := Detect(tt.ref)
			if err == nil {
				t.Fatalf("Detect(%q) succeeded, want error containing %q", tt.ref, tt.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("Detect(%q) error %q does not contain %q", tt.ref, msg, tt.want)
			}
			if !strings.Contains(msg, "such as ghcr.io/acme/bot-core") {
				t.Errorf("error %q does not say what a valid reference looks like", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q is not one line", msg)
			}
		})
	}
}

func TestInfoRepo(t *testing.T) {
	info, err := Detect("127.0.0.1:5000/bot")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := info.Repo("rust-core-engine")
	if err != nil {
		t.Fatal(err)
	}
	if got := repo.String(); got != "127.0.0.1:5000/bot/rust-core-engine" {
		t.Errorf("repo %q", got)
	}
	if repo.Scheme() != "http" {
		t.Errorf("loopback scheme %q, want http", repo.Scheme())
	}
	if _, err := info.Repo("Bad/Name"); err == nil {
		t.Error("Repo accepted an invalid service name")
	}
	hub, _ := Detect("acme")
	if got := hub.Prefix(); got != "index.docker.io/acme" {
		t.Errorf("prefix %q", got)
	}
}

func TestRepoRefusesNamesThatLeaveThePrefix(t *testing.T) {
	info, err := Detect("ghcr.io/acme/bot-core")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"../x", "..", "a/b", "", "Rust", "x/../../y", "."} {
		if repo, err := info.Repo(s); err == nil || !strings.Contains(err.Error(), "invalid service name") {
			t.Errorf("Repo(%q) = %v, %v; want an invalid service name error", s, repo, err)
		}
	}
	if repo, err := info.Repo("rust-core-engine"); err != nil || repo.String() != "ghcr.io/acme/bot-core/rust-core-engine" {
		t.Errorf("Repo(rust-core-engine) = %v, %v", repo, err)
	}
}
