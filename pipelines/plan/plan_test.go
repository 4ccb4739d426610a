package plan

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/bot-core/delivery/pipelines/labels"
	"github.com/bot-core/delivery/pipelines/services"
	"github.com/bot-core/delivery/pipelines/signpolicy"
	"github.com/bot-core/delivery/pipelines/vuln"
)

func release() Request {
	return Request{Platforms: "linux/amd64,linux/arm64", Version: "v1.2.3", GitSHA: "0123456789abcdef0123456789abcdef01234567",
		Epoch: 1700000000, Severity: vuln.DefaultSeverities}
}

func TestNewPlansARelease(t *testing.T) {
	req := release()
	req.Registry = "ghcr.io/acme/bot-core"
	req.Signing = signpolicy.Inputs{RequestURL: true, RequestToken: true}
	p, err := New(services.Default(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(p.Services); got != 3 {
		t.Errorf("%d services, want every service of the manifest", got)
	}
	if want := []string{"v1.2.3", "1.2.3", "1.2", "1", "latest"}; !reflect.DeepEqual(p.Tags, want) {
		t.Errorf("tags %v, want %v", p.Tags, want)
	}
	if p.Labels[labels.LabelVersion] != "v1.2.3" || p.Labels[labels.LabelCreated] != "2023-11-14T22:13:20Z" || p.Labels[labels.LabelRevision] != req.GitSHA {
		t.Errorf("labels %v", p.Labels)
	}
	if !p.Publishing() || p.Signing != signpolicy.Keyless || !reflect.DeepEqual(p.Severities, []string{"HIGH", "CRITICAL"}) {
		t.Errorf("publishing %v, signing %q, severities %v", p.Publishing(), p.Signing, p.Severities)
	}
	repo, err := p.Repo("rust-core-engine")
	if err != nil || repo.Name() != "ghcr.io/acme/bot-core/rust-core-engine" {
		t.Errorf("repo %v, %v", repo, err)
	}
}

func TestBuildOnlyAndExportDoNotPublish(t *testing.T) {
	req := release()
	if p, err := New(services.Default(), req); err != nil || p.Publishing() {
		t.Errorf("no registry: publishing=%v err=%v", p.Publishing(), err)
	}
	req.Registry, req.BuildOnly = "ghcr.io/acme/bot-core", true
	p, err := New(services.Default(), req)
	if err != nil || p.Publishing() || p.Registry == nil {
		t.Errorf("build-only: publishing=%v registry=%v err=%v", p.Publishing(), p.Registry, err)
	}
	if _, err := (Plan{}).Repo("x"); err == nil {
		t.Error("Repo without a registry succeeded")
	}
}

func TestNewNamesTheFieldOfEachMistake(t *testing.T) {
	for _, tc := range []struct {
		field  string
		change func(*Request)
		want   string
	}{
		{"services", func(r *Request) { r.Services = []string{"nope"} }, `unknown service "nope"`},
		{"platforms", func(r *Request) { r.Platforms = "linux/s390x" }, `unsupported platform "linux/s390x"`},
		{"platforms", func(r *Request) { r.Platforms = "" }, "no platform given"},
		{"version", func(r *Request) { r.Version = "1.0" }, `"1.0"`},
		{"version", func(r *Request) { r.Version, r.GitSHA = "", "" }, ErrNothingToTag.Error()},
		{"epoch", func(r *Request) { r.Epoch = -1 }, ErrNegativeEpoch.Error()},
		{"registry", func(r *Request) { r.Registry = "ghcr.io/Acme/Bot Core" }, "invalid registry reference"},
		{"registry", func(r *Request) { r.Registry = "ghcr.io/acme/bot-core:v1" }, "it has a tag"},
		// The CLI's registry detect refuses it with the same words: one parser.
		{"registry", func(r *Request) { r.Registry = "localhost/bot-core" }, "give localhost's port explicitly"},
		{"services", func(r *Request) { r.Services = []string{"../x"} }, `unknown service "../x"`},
		{"severity", func(r *Request) { r.Severity = "HIGH,SEVERE" }, `unknown severity "SEVERE"`},
		{"signing", func(r *Request) { r.Signing = signpolicy.Inputs{Key: true, IDToken: true} }, signpolicy.ErrKeyAndToken.Error()},
	} {
		req := release()
		tc.change(&req)
		_, err := New(services.Default(), req)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v (%T), want a %s error mentioning %s", tc.field, err, err, tc.field, tc.want)
		}
	}
}

// Publishing without a signature is refused unless asked for, and the plan
// says so; a build-only or export-only release needs no signature.
func TestUnsignedPublishingIsExplicit(t *testing.T) {
	req := release()
	req.Registry = "ghcr.io/acme/bot-core"
	var fe *FieldError
	if _, err := New(services.Default(), req); !errors.Is(err, ErrUnsigned) || !errors.As(err, &fe) || fe.Field != "signing" {
		t.Fatalf("unsigned publish: %v", err)
	}
	req.AllowUnsigned = true
	if p, err := New(services.Default(), req); err != nil || !p.Unsigned {
		t.Errorf("--allow-unsigned: %+v, %v", p.Unsigned, err)
	}
	req.AllowUnsigned, req.BuildOnly = false, true
	if p, err := New(services.Default(), req); err != nil || p.Unsigned {
		t.Errorf("build-only: unsigned=%v, %v", p.Unsigned, err)
	}
	req.BuildOnly, req.Registry = false, ""
	if p, err := New(services.Default(), req); err != nil || p.Unsigned {
		t.Errorf("export only: unsigned=%v, %v", p.Unsigned, err)
	}
	req.Registry, req.Signing = "ghcr.io/acme/bot-core", signpolicy.Inputs{Key: true}
	if p, err := New(services.Default(), req); err != nil || p.Unsigned {
		t.Errorf("signed with a key: unsigned=%v, %v", p.Unsigned, err)
	}
}

func TestCIRefsTagBranchesAndPullRequests(t *testing.T) {
	req := release()
	req.Version, req.GitRef = "", "refs/heads/main"
	p, err := New(services.Default(), req)
	if err != nil || !reflect.DeepEqual(p.Tags, []string{"main", "main-0123456", "sha-0123456"}) {
		t.Errorf("branch: %v, %v", p.Tags, err)
	}
	// A pushed release tag is that release: same tags, and the version label.
	req.GitRef = "refs/tags/v1.4.0"
	p, err = New(services.Default(), req)
	if err != nil || p.Version != "v1.4.0" || p.Labels[labels.LabelVersion] != "v1.4.0" ||
		!reflect.DeepEqual(p.Tags, []string{"v1.4.0", "1.4.0", "1.4", "1", "latest"}) {
		t.Errorf("release tag: version %q, labels %v, tags %v, %v", p.Version, p.Labels, p.Tags, err)
	}
	req.GitRef = "refs/tags/nightly"
	if p, err = New(services.Default(), req); err != nil || p.Version != "" || p.Labels[labels.LabelVersion] != "" {
		t.Errorf("non-release tag: version %q, labels %v, %v", p.Version, p.Labels, err)
	}
	req.GitRef, req.PR = "", 7
	if p, err = New(services.Default(), req); err != nil || !reflect.DeepEqual(p.Tags, []string{"pr-7"}) {
		t.Errorf("pull request: %v, %v", p.Tags, err)
	}
}

func TestImageLabelsOutsideARelease(t *testing.T) {
	l, created, err := ImageLabels("", "", "", 0)
	if err != nil || l[labels.LabelVersion] != "" || created.Unix() != 0 {
		t.Errorf("no version: %v, %v, %v", l, created, err)
	}
	var fe *FieldError
	if _, _, err := ImageLabels("1.0", "", "", 0); !errors.As(err, &fe) || fe.Field != "version" {
		t.Errorf("bad version: %v", err)
	}
	if _, _, err := ImageLabels("", "", "", -1); !errors.Is(err, ErrNegativeEpoch) {
		t.Errorf("negative epoch: %v", err)
	}
}
