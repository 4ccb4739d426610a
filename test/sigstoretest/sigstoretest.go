// Package sigstoretest runs a private, offline Sigstore for tests: an OIDC
// issuer (with a GitHub Actions-style ID-token endpoint) and the real
// Fulcio server with an ephemeral CA, plus the real cosign CLI to check
// signatures made elsewhere. Fulcio and cosign are built from the Go module
// proxy on first use and cached under ToolsDir (BOTCORE_TOOLS_DIR, default
// /var/cache/bot-core/tools); a cold build takes minutes, so run tests that
// use it with a generous -timeout.
//
// Rekor cannot run here (it needs Trillian and MySQL), so there is no
// transparency log: sign with --tlog-upload=false and verify with
// --insecure-ignore-tlog. Fulcio runs without a CT log, so certificates
// carry no SCT: sign and verify with --insecure-ignore-sct. Without a
// transparency log a keyless signature only verifies while its certificate
// is valid (10 minutes).
//
//	s := sigstoretest.Start(t)
//	token := s.Issuer.Token(t, sigstoretest.TokenClaims{Email: "ci@example.com"})
//	// botcore sign --fulcio-url s.Fulcio.URL --identity-token token ...
//	out, err := s.Cosign(t, nil, "verify", "--certificate-identity", "ci@example.com",
//		"--certificate-oidc-issuer", s.Issuer.URL, "--insecure-ignore-tlog", "--insecure-ignore-sct", ref)
package sigstoretest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/cosign/v2/pkg/cosign"
)

// Sigstore is a running issuer and Fulcio, and the cosign CLI.
type Sigstore struct {
	Issuer *Issuer
	Fulcio *Fulcio
	// CosignPath is the cosign CLI binary.
	CosignPath string
}

// Start starts an Issuer and a Fulcio trusting it, and builds (or finds)
// the cosign CLI. Everything stops at test cleanup.
func Start(t testing.TB) *Sigstore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cosign, err := CosignBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	issuer := NewIssuer(t)
	return &Sigstore{Issuer: issuer, Fulcio: StartFulcio(t, issuer), CosignPath: cosign}
}

// CosignEnv is the environment the cosign CLI runs with: an empty HOME and
// docker config, SIGSTORE_ROOT_FILE naming the Fulcio root (which also
// keeps cosign from fetching the public-good trust root over the network),
// no ambient GitHub Actions token, and extra on top.
func (s *Sigstore) CosignEnv(t testing.TB, extra map[string]string) []string {
	t.Helper()
	home := t.TempDir()
	env := map[string]string{
		"HOME":               home,
		"DOCKER_CONFIG":      filepath.Join(home, ".docker"),
		"TUF_ROOT":           filepath.Join(home, ".sigstore"),
		"PATH":               os.Getenv("PATH"),
		"SIGSTORE_ROOT_FILE": s.Fulcio.RootFile,
	}
	for k, v := range extra {
		env[k] = v
	}
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list
}

// CosignResult is the outcome of one cosign run.
type CosignResult struct {
	Args           []string
	Stdout, Stderr string
	Err            error // nil when cosign exited 0
}

func (r CosignResult) String() string {
	return fmt.Sprintf("cosign %s: err=%v\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Err, r.Stdout, r.Stderr)
}

// Cosign runs the cosign CLI with CosignEnv(extra) and returns what it
// printed; a non-zero exit is r.Err, not a test failure.
func (s *Sigstore) Cosign(t testing.TB, extra map[string]string, args ...string) CosignResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.CosignPath, args...)
	cmd.Env = s.CosignEnv(t, extra)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return CosignResult{Args: args, Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
}

// KeylessVerifyArgs are the cosign (and botcore verify) flags that check a
// keyless signature by identity against this Fulcio without Rekor or a CT
// log.
func (s *Sigstore) KeylessVerifyArgs(identity string) []string {
	return []string{
		"--certificate-identity", identity,
		"--certificate-oidc-issuer", s.Issuer.URL,
		"--insecure-ignore-tlog", "--insecure-ignore-sct",
	}
}

// KeyPair is a cosign key pair as `cosign generate-key-pair` writes it:
// an encrypted private key and its public key, also stored in files.
type KeyPair struct {
	PrivatePEM, PublicPEM   []byte
	Password                string
	PrivateFile, PublicFile string
}

// NewKeyPair generates an ECDSA P-256 cosign key pair encrypted with
// password (which may be empty).
func NewKeyPair(t testing.TB, password string) KeyPair {
	t.Helper()
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte(password), nil })
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k := KeyPair{PrivatePEM: kb.PrivateBytes, PublicPEM: kb.PublicBytes, Password: password,
		PrivateFile: filepath.Join(dir, "cosign.key"), PublicFile: filepath.Join(dir, "cosign.pub")}
	if err := os.WriteFile(k.PrivateFile, k.PrivatePEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.PublicFile, k.PublicPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}
