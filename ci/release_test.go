package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

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
