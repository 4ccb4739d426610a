package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/bot-core/delivery/pipelines/plan"
	"github.com/bot-core/delivery/pipelines/services"
	"github.com/bot-core/delivery/pipelines/signpolicy"
	"github.com/bot-core/delivery/pipelines/vuln"
)

// Each plan mistake reaches the user worded with build-all's own flags.
func TestWithFlagNamesBuildAllsFlags(t *testing.T) {
	good := plan.Request{Platforms: "linux/amd64", Version: "v1.0.0", Severity: vuln.DefaultSeverities}
	for _, tc := range []struct {
		change func(*plan.Request)
		want   string
	}{
		{func(r *plan.Request) { r.Services = []string{"nope"} }, `--services: unknown service "nope"`},
		{func(r *plan.Request) { r.Platforms = "linux/s390x" }, `--platforms: unsupported platform "linux/s390x"`},
		{func(r *plan.Request) { r.Version = "1.0" }, `--version: `},
		{func(r *plan.Request) { r.Version = "" }, "nothing to tag: give --version (e.g. v1.0.0), or --git-ref/--git-sha/--pr as CI does"},
		{func(r *plan.Request) { r.Epoch = -5 }, "--source-date-epoch: "},
		{func(r *plan.Request) { r.Registry = "ghcr.io/Acme/Bot Core" }, "--registry: invalid registry reference"},
		{func(r *plan.Request) { r.Severity = "HIGH,SEVERE" }, `--severity: severity list "HIGH,SEVERE": unknown severity "SEVERE"`},
		{func(r *plan.Request) { r.Signing = signpolicy.Inputs{Key: true, IDToken: true} }, "give either --cosign-key (key-based signing) or an OIDC token (keyless), not both"},
		{func(r *plan.Request) {
			r.Signing = signpolicy.Inputs{IDToken: true, RequestURL: true, RequestToken: true}
		}, "give either --oidc-token or --oidc-request-url/--oidc-request-token, not both"},
		{func(r *plan.Request) { r.Signing = signpolicy.Inputs{RequestURL: true} }, "--oidc-request-url and --oidc-request-token go together"},
		{func(r *plan.Request) { r.Signing = signpolicy.Inputs{KeyPassword: true} }, "--cosign-password was given without --cosign-key"},
	} {
		req := good
		tc.change(&req)
		_, err := plan.New(services.Default(), req)
		if err == nil {
			t.Fatalf("%+v: no error", req)
		}
		if got := withFlag(err).Error(); !strings.HasPrefix(got, tc.want) {
			t.Errorf("withFlag(%v) = %q, want it to start with %q", err, got, tc.want)
		}
	}
	other := errors.New("engine gone")
	if withFlag(other) != other {
		t.Error("an error that is not the plan's changed")
	}
}

// The clock prints one line per finished stage, in the form the stage
// benchmark parses, and a repeated stage name is the same stage.
func TestClockPrintsEachStageOnce(t *testing.T) {
	out := captureStdout(t, func() {
		var c clock
		c.lap("build")
		c.lap("publish")
		c.lap("publish")
		c.lap("tag")
		c.lap("done")
	})
	lines := regexp.MustCompile(`stage ([a-z+]+): ([0-9.]+)s`).FindAllStringSubmatch(out, -1)
	var names []string
	for _, l := range lines {
		names = append(names, l[1])
	}
	if strings.Join(names, ",") != "build,publish,tag" {
		t.Errorf("stages printed %v from:\n%s", names, out)
	}
}

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	f()
	os.Stdout = old
	w.Close()
	var b bytes.Buffer
	io.Copy(&b, r)
	return b.String()
}

// The stages wrap the module calls' errors with what failed; the message a
// user sees must keep that, and the engine's details must survive.
func TestWholeError(t *testing.T) {
	engine := &gqlerror.Error{Message: "process \"botcore attest\" did not complete successfully: exit code: 1",
		Extensions: map[string]any{"_type": "EXEC_ERROR", "exitCode": 1}}
	wrapped := fmt.Errorf("attest the SBOM of api (linux/arm64): %w", engine)
	var got *gqlerror.Error
	if !errors.As(wholeError(wrapped), &got) {
		t.Fatalf("wholeError(%v) is no GraphQL error", wrapped)
	}
	want := "attest the SBOM of api (linux/arm64): " + engine.Message
	if got.Message != want || got.Extensions["_type"] != "EXEC_ERROR" || got.Extensions["exitCode"] != 1 {
		t.Errorf("wholeError: message %q extensions %v; want %q with the engine's extensions", got.Message, got.Extensions, want)
	}
	if wholeError(engine) != error(engine) || wholeError(nil) != nil {
		t.Error("an unwrapped engine error (or nil) should pass through unchanged")
	}
	plain := errors.New("--start-timeout 0: give the seconds each image has to answer its health check")
	if wholeError(plain) != plain {
		t.Error("an error of this module's own should pass through unchanged")
	}
}
