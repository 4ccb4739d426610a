package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-core/delivery/pipelines/registry/registrytest"
	"github.com/bot-core/delivery/test/sigstoretest"
)

// TestPullVerify: pull --verify refuses an unsigned image (writing nothing)
// and pulls a signed one into an OCI layout. Key signatures need neither
// Fulcio nor the cosign CLI, so this runs in -short mode too.
func TestPullVerify(t *testing.T) {
	srv := registrytest.NewBasic(t)
	d1 := seedRelease(t, srv, "rust-core-engine", "v1.2.3")
	d2 := seedRelease(t, srv, "python-ai-service", "v1.2.3")
	kp := sigstoretest.NewKeyPair(t, "pull-test-password")
	env := envWith(pullEnv(t, srv), map[string]string{"COSIGN_PASSWORD": kp.Password})
	out := t.TempDir()
	pull := []string{"pull", "--version", "v1.2.3", "-s", "rust-core-engine", "-s", "python-ai-service", "-o", out,
		"--verify", "--key", kp.PublicFile, "--insecure-ignore-tlog"}

	// Only rust-core-engine is signed: python-ai-service is refused, and
	// nothing is pulled, not even the signed image.
	if r := botcore(t, env, "", "sign", "--key", kp.PrivateFile, "--tlog-upload=false", "rust-core-engine@"+d1); r.code != 0 {
		t.Fatal(r)
	}
	r := botcore(t, env, "", pull...)
	wantError(t, r, "refusing to pull "+srv.Host+"/bot/python-ai-service:v1.2.3: "+srv.Host+"/bot/python-ai-service@"+d2+" is not signed")
	if !strings.Contains(r.stderr, "verified "+srv.Host+"/bot/rust-core-engine:v1.2.3") {
		t.Errorf("progress: %s", r)
	}
	if _, err := os.Stat(filepath.Join(out, "rust-core-engine")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a layout was written although the pull was refused: %v", err)
	}

	if r := botcore(t, env, "", "sign", "--key", kp.PrivateFile, "--tlog-upload=false", "python-ai-service@"+d2); r.code != 0 {
		t.Fatal(r)
	}
	if r := botcore(t, env, "", pull...); r.code != 0 {
		t.Fatal(r)
	}
	checkLayout(t, filepath.Join(out, "rust-core-engine"), d1, "v1.2.3")
	checkLayout(t, filepath.Join(out, "python-ai-service"), d2, "v1.2.3")

	// Another key is refused.
	other := sigstoretest.NewKeyPair(t, "")
	r = botcore(t, env, "", "pull", "--version", "v1.2.3", "-s", "rust-core-engine", "-o", t.TempDir(), "--verify", "--key", other.PublicFile, "--insecure-ignore-tlog")
	wantError(t, r, "refusing to pull", "verifies with the key "+other.PublicFile)

	// A policy without --verify is a mistake, not a silent no-op.
	r = botcore(t, env, "", "pull", "--version", "v1.2.3", "-o", out, "--key", kp.PublicFile)
	wantError(t, r, "only apply with --verify")
}
