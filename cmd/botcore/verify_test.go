package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bot-core/delivery/pipelines/registry/registrytest"
	"github.com/bot-core/delivery/test/sigstoretest"
)

// TestPullVerify: pull verifies by default, refuses an unsigned image
// (writing nothing) and pulls a signed one into an OCI layout. Key signatures need neither
// Fulcio nor the cosign CLI, so this runs in -short mode too.
func TestPullVerify(t *testing.T) {
	srv := registrytest.NewBasic(t)
	d1 := seedRelease(t, srv, "rust-core-engine", "v1.2.3")
	d2 := seedRelease(t, srv, "python-ai-service", "v1.2.3")
	kp := sigstoretest.NewKeyPair(t, "pull-test-password")
	env := envWith(pullEnv(t, srv), map[string]string{"COSIGN_PASSWORD": kp.Password})
	out := t.TempDir()
	pull := []string{"pull", "--version", "v1.2.3", "-s", "rust-core-engine", "-s", "python-ai-service", "-o", out,
		"--key", kp.PublicFile, "--insecure-ignore-tlog"}

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
	r = botcore(t, env, "", "pull", "--version", "v1.2.3", "-s", "rust-core-engine", "-o", t.TempDir(), "--key", other.PublicFile, "--insecure-ignore-tlog")
	wantError(t, r, "refusing to pull", "verifies with the key "+other.PublicFile)

	// --verify, from before verification was the default, is still
	// accepted and verifies the same way.
	out2 := t.TempDir()
	r = botcore(t, env, "", "pull", "--version", "v1.2.3", "-s", "rust-core-engine", "-o", out2, "--verify", "--key", kp.PublicFile, "--insecure-ignore-tlog")
	if r.code != 0 || !strings.Contains(r.stderr, "verified "+srv.Host+"/bot/rust-core-engine:v1.2.3") {
		t.Fatal(r)
	}
	checkLayout(t, filepath.Join(out2, "rust-core-engine"), d1, "v1.2.3")
}

// TestVerifyTrustedRootOffline: an image signed keylessly by a private
// Fulcio verifies with --trusted-root, a trusted root saved from that
// Fulcio's chain, after the Fulcio has stopped and with no TUF repository
// reachable or cached. The harness has no Rekor and no CT log, so the
// signature carries neither a transparency-log entry nor an SCT: what is
// checked offline is the certificate chain from the trusted root's Fulcio
// CA, the signer and the signature (--insecure-ignore-tlog and
// --insecure-ignore-sct). A trusted root of another CA is refused.
func TestVerifyTrustedRootOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Fulcio")
	}
	srv := registrytest.NewBasic(t)
	digest := seedRelease(t, srv, svc, "v1.0.0")
	ref := srv.Host + "/bot/" + svc + "@" + digest
	const identity = "release-bot@bot-core.test"
	dir := t.TempDir()
	trustedRoot := filepath.Join(dir, "trusted_root.json")
	otherRoot := filepath.Join(dir, "other_trusted_root.json")

	// Fulcio and the issuer run only inside these subtests: their cleanup
	// stops them before anything is verified.
	var issuerURL, fulcioAddr string
	t.Run("sign", func(t *testing.T) {
		issuer := sigstoretest.NewIssuer(t)
		fulcio := sigstoretest.StartFulcio(t, issuer)
		issuerURL, fulcioAddr = issuer.URL, strings.TrimPrefix(fulcio.URL, "http://")
		env := envWith(envFor(t, srv), map[string]string{"SIGSTORE_ID_TOKEN": issuer.Token(t, sigstoretest.TokenClaims{Email: identity})})
		if r := botcore(t, env, "", "sign", "--fulcio-url", fulcio.URL, "--tlog-upload=false", "--insecure-ignore-sct", ref); r.code != 0 {
			t.Fatal(r)
		}
		r := botcore(t, env, "", "trust-root", "save", trustedRoot, "--fulcio-roots", fulcio.RootFile, "--fulcio-url", fulcio.URL)
		if r.code != 0 || !strings.Contains(r.stdout, "1 Fulcio CA, 0 Rekor keys") {
			t.Fatal(r)
		}
	})
	t.Run("another CA", func(t *testing.T) {
		other := sigstoretest.StartFulcio(t, sigstoretest.NewIssuer(t))
		if r := botcore(t, nil, "", "trust-root", "save", otherRoot, "--fulcio-roots", other.RootFile); r.code != 0 {
			t.Fatal(r)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	if c, err := net.DialTimeout("tcp", fulcioAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("Fulcio still answers at %s", fulcioAddr)
	}
	// cosign and sigstore-go read the TUF settings from the process
	// environment: no cached TUF metadata, and a mirror nobody answers.
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("TUF_ROOT", filepath.Join(home, ".sigstore", "root"))
	t.Setenv("TUF_MIRROR", "http://127.0.0.1:1")
	t.Setenv("SIGSTORE_ROOT_FILE", "")

	env := envFor(t, srv)
	policy := []string{"--certificate-identity", identity, "--certificate-oidc-issuer", issuerURL}
	// Clipped, so that each append below makes its own copy.
	offline := slices.Clip(append(policy, "--insecure-ignore-tlog", "--insecure-ignore-sct"))
	verify := func(extra ...string) result {
		t.Helper()
		return botcore(t, env, "", append(append([]string{"verify"}, extra...), svc+":v1.0.0")...)
	}

	// Without a trusted root the public-good one is needed, and it cannot
	// be had here: the success below owes nothing to the network.
	r := verify(offline...)
	wantError(t, r, "cannot load the Sigstore public-good trust root from TUF", "pass --trusted-root with a trusted root saved by `botcore trust-root save`")

	r = verify(append(offline, "--trusted-root", trustedRoot)...)
	if r.code != 0 || !strings.Contains(r.stdout, "verified "+srv.Host+"/bot/"+svc+":v1.0.0") || !strings.Contains(r.stdout, digest) ||
		!strings.Contains(r.stdout, "1 signature by "+identity+" (issuer "+issuerURL+"), transparency log not checked") {
		t.Errorf("verify --trusted-root: %s", r)
	}
	out := t.TempDir()
	r = botcore(t, pullEnv(t, srv), "", append([]string{"pull", "--version", "v1.0.0", "-s", svc, "-o", out, "--trusted-root", trustedRoot}, offline...)...)
	if r.code != 0 || !strings.Contains(r.stderr, "verified "+srv.Host+"/bot/"+svc+":v1.0.0") {
		t.Fatalf("pull --trusted-root: %s", r)
	}
	checkLayout(t, filepath.Join(out, svc), digest, "v1.0.0")

	// The real cosign CLI reads the same file the same way.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if bin, err := sigstoretest.CosignBinary(ctx); err != nil {
		t.Error(err)
	} else {
		cmd := exec.CommandContext(ctx, bin, append(append([]string{"verify", "--trusted-root", trustedRoot,
			"--registry-username", srv.User, "--registry-password", srv.Password}, offline...), ref)...)
		cmd.Env = []string{"HOME=" + home, "TUF_ROOT=" + filepath.Join(home, ".sigstore", "root"), "TUF_MIRROR=http://127.0.0.1:1", "PATH=" + os.Getenv("PATH")}
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("cosign verify --trusted-root: %v\n%s", err, b)
		}
	}

	// Another CA's trusted root: one sentence naming the file.
	r = verify(append(offline, "--trusted-root", otherRoot)...)
	wantError(t, r, "the signature certificates of "+ref+" were not issued by a Fulcio CA of the trusted root "+otherRoot,
		"pass --trusted-root with the trusted root of the Sigstore that signed it")
	r = botcore(t, pullEnv(t, srv), "", append([]string{"pull", "--version", "v1.0.0", "-s", svc, "-o", t.TempDir(), "--trusted-root", otherRoot}, offline...)...)
	wantError(t, r, "refusing to pull", "were not issued by a Fulcio CA of the trusted root "+otherRoot)

	// What the trusted root lacks is named before any signature is read.
	broken := filepath.Join(dir, "broken.json")
	if err := os.WriteFile(broken, []byte(`{"mediaType": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{append(policy, "--insecure-ignore-tlog", "--trusted-root", trustedRoot), []string{
			"the trusted root " + trustedRoot + " holds no certificate-transparency log key", "or pass --insecure-ignore-sct"}},
		{append(policy, "--insecure-ignore-sct", "--trusted-root", trustedRoot), []string{
			"the trusted root " + trustedRoot + " holds no transparency-log (Rekor) key", "or pass --insecure-ignore-tlog"}},
		{append(offline, "--trusted-root", trustedRoot, "--ca-roots", otherRoot), []string{
			"both a trusted root and separate Fulcio CA roots were given: drop --ca-roots"}},
		{append(offline, "--trusted-root", filepath.Join(dir, "missing.json")), []string{
			"the trusted root " + filepath.Join(dir, "missing.json") + " cannot be read", "botcore trust-root save FILE"}},
		{append(offline, "--trusted-root", broken), []string{"the trusted root " + broken + " is not a Sigstore trusted_root.json"}},
	} {
		wantError(t, verify(tc.args...), tc.wants...)
	}
}

// TestRetaggedReleaseIsRefused: an older signed release tagged as a newer
// version passes the signature check (the signer is right) but not the
// release check: verify and pull refuse it naming both versions, and the
// genuine release passes.
func TestRetaggedReleaseIsRefused(t *testing.T) {
	srv := registrytest.NewBasic(t)
	old := seedRelease(t, srv, "rust-core-engine", "v1.1.0")
	genuine := seedRelease(t, srv, "rust-core-engine", "v1.2.0")
	kp := sigstoretest.NewKeyPair(t, "")
	env := pullEnv(t, srv)
	for _, d := range []string{old, genuine} {
		if r := botcore(t, env, "", "sign", "--key", kp.PrivateFile, "--tlog-upload=false", "rust-core-engine@"+d); r.code != 0 {
			t.Fatal(r)
		}
	}
	policy := []string{"--key", kp.PublicFile, "--insecure-ignore-tlog"}
	if r := botcore(t, env, "", append([]string{"verify", "rust-core-engine:v1.2.0"}, policy...)...); r.code != 0 || !strings.Contains(r.stdout, "release  v1.2.0") {
		t.Fatalf("genuine v1.2.0: %s", r)
	}
	srv.Tag(t, srv.Host+"/bot/rust-core-engine", "v1.2.0", old) // someone who can push re-tags

	r := botcore(t, env, "", append([]string{"verify", "rust-core-engine:v1.2.0"}, policy...)...)
	wantError(t, r, "is release v1.1.0 (its org.opencontainers.image.version label), not v1.2.0", "release.json records for v1.2.0")
	// By digest nothing names a release, unless asked.
	if r := botcore(t, env, "", append([]string{"verify", "rust-core-engine@" + old}, policy...)...); r.code != 0 {
		t.Fatalf("by digest: %s", r)
	}
	r = botcore(t, env, "", append([]string{"verify", "--release", "v1.2.0", "rust-core-engine@" + old}, policy...)...)
	wantError(t, r, "is release v1.1.0")

	out := t.TempDir()
	r = botcore(t, env, "", append([]string{"pull", "--version", "v1.2.0", "-s", "rust-core-engine", "-o", out}, policy...)...)
	wantError(t, r, "refusing to pull "+srv.Host+"/bot/rust-core-engine:v1.2.0", "is release v1.1.0")
	if _, err := os.Stat(filepath.Join(out, "rust-core-engine")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a layout was written although the pull was refused: %v", err)
	}
	if r := botcore(t, env, "", append([]string{"pull", "--version", "v1.1.0", "-s", "rust-core-engine", "-o", out}, policy...)...); r.code != 0 {
		t.Fatalf("genuine v1.1.0: %s", r)
	}
}

// An image without a version label (not built by this pipeline) verifies by
// its tag with a note; --release makes the label required.
func TestVerifyImageWithoutVersionLabel(t *testing.T) {
	srv := registrytest.NewBasic(t)
	d := srv.Push(t, srv.Host+"/bot/rust-core-engine:v1.0.0", registrytest.Index(t, nil, base))
	kp := sigstoretest.NewKeyPair(t, "")
	env := pullEnv(t, srv)
	if r := botcore(t, env, "", "sign", "--key", kp.PrivateFile, "--tlog-upload=false", "rust-core-engine@"+d); r.code != 0 {
		t.Fatal(r)
	}
	policy := []string{"--key", kp.PublicFile, "--insecure-ignore-tlog"}
	r := botcore(t, env, "", append([]string{"verify", "rust-core-engine:v1.0.0"}, policy...)...)
	if r.code != 0 || !strings.Contains(r.stderr, "has no version label, so which release it is was not checked") || strings.Contains(r.stdout, "release ") {
		t.Fatalf("unlabelled image by tag: %s", r)
	}
	r = botcore(t, env, "", append([]string{"verify", "--release", "v1.0.0", "rust-core-engine:v1.0.0"}, policy...)...)
	wantError(t, r, "carries no org.opencontainers.image.version label, so nothing says it is release v1.0.0")
}
