package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-core/delivery/cmd/botcore/internal/signing"
	"github.com/bot-core/delivery/pipelines/labels"
	"github.com/bot-core/delivery/pipelines/registry/registrytest"
	"github.com/bot-core/delivery/test/sigstoretest"
)

// envWith is env plus extra (extra wins).
func envWith(env map[string]string, extra map[string]string) map[string]string {
	out := maps.Clone(env)
	maps.Copy(out, extra)
	return out
}

func decodeStdout[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("stdout is not the expected JSON: %v\n%s", err, r)
	}
	return v
}

// wantError checks a failure: exit 1, and the last stderr line is one
// "botcore: ..." sentence holding each of wants.
func wantError(t *testing.T, r result, wants ...string) {
	t.Helper()
	last := errorLine(r.stderr)
	if r.code != 1 || !strings.HasPrefix(last, "botcore: ") {
		t.Errorf("want exit 1 and a botcore: error line: %s", r)
	}
	for _, w := range wants {
		if !strings.Contains(last, w) {
			t.Errorf("error line lacks %q:\n%s", w, last)
		}
	}
}

func errorLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndex(s, "\n")+1:]
}

// wantNoSecrets checks none of secrets appears in what a command printed.
func wantNoSecrets(t *testing.T, r result, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("a secret (%.12s...) was printed: %s", s, r)
		}
	}
	// Every JWT starts with a base64url '{"', so no token shows either.
	if strings.Contains(r.stdout+r.stderr, "eyJ") {
		t.Errorf("something like a JWT was printed: %s", r)
	}
}

const spdxPredicate = `{
  "spdxVersion": "SPDX-2.3",
  "dataLicense": "CC0-1.0",
  "SPDXID": "SPDXRef-DOCUMENT",
  "name": "rust-core-engine",
  "documentNamespace": "https://bot-core.test/spdx/rust-core-engine",
  "creationInfo": {"created": "2024-01-01T00:00:00Z", "creators": ["Tool: test"]},
  "packages": [{"name": "openssl", "SPDXID": "SPDXRef-openssl", "versionInfo": "3.0.13", "downloadLocation": "NOASSERTION"}]
}`

// TestSignKeyless is the keyless flow against a real Fulcio: botcore signs
// an index with a token from the GitHub Actions-like endpoint, and both the
// real cosign CLI and botcore verify it; a wrong identity, an attestation,
// and a tag moved to another image are checked the same way.
func TestSignKeyless(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Fulcio and the cosign CLI")
	}
	s := sigstoretest.Start(t)
	const identity = "release-bot@bot-core.test"
	s.Issuer.SetActionsIdentity(sigstoretest.TokenClaims{Email: identity})

	srv := registrytest.NewBasic(t)
	repo := srv.Host + "/bot/" + svc
	digest := seedRelease(t, srv, svc, "v1.0.0")
	ref := repo + "@" + digest
	env := envWith(envFor(t, srv), s.Issuer.ActionsEnv())
	signArgs := []string{"--fulcio-url", s.Fulcio.URL, "--tlog-upload=false", "--insecure-ignore-sct"}
	cosignAuth := []string{"--registry-username", srv.User, "--registry-password", srv.Password}
	verifyArgs := func(id string) []string {
		return []string{"--certificate-identity", id, "--certificate-oidc-issuer", s.Issuer.URL,
			"--ca-roots", s.Fulcio.RootFile, "--insecure-ignore-tlog", "--insecure-ignore-sct"}
	}

	r := botcore(t, env, "", append(append([]string{"--json", "sign"}, signArgs...), ref)...)
	if r.code != 0 {
		t.Fatal(r)
	}
	wantNoSecrets(t, r, s.Issuer.ActionsRequestToken, srv.Password)
	got := decodeStdout[[]signing.Result](t, r)
	hex := strings.TrimPrefix(digest, "sha256:")
	want := signing.Result{
		Reference: ref, Digest: digest, Signature: repo + ":sha256-" + hex + ".sig",
		Mode: signing.ModeKeyless, FulcioURL: s.Fulcio.URL, Tlog: false,
		CertificateIdentity: identity, CertificateOIDCIssuer: s.Issuer.URL,
	}
	if len(got) != 1 || got[0] != want {
		t.Errorf("sign --json:\n got %+v\nwant %+v", got, want)
	}
	if s.Issuer.ActionsFetches() != 1 {
		t.Errorf("the GitHub Actions endpoint handed out %d tokens, want 1", s.Issuer.ActionsFetches())
	}
	for _, w := range []string{"keyless signing with the identity token from GitHub Actions", "without the transparency log"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("progress lacks %q: %s", w, r)
		}
	}

	// The real cosign CLI accepts the signature, and only for the signer.
	c := s.Cosign(t, nil, append(append(append([]string{"verify"}, cosignAuth...), s.KeylessVerifyArgs(identity)...), repo+":v1.0.0")...)
	if c.Err != nil || !strings.Contains(c.Stdout, digest) {
		t.Errorf("cosign verify: %s", c)
	}
	c = s.Cosign(t, nil, append(append(append([]string{"verify"}, cosignAuth...), s.KeylessVerifyArgs("mallory@bot-core.test")...), ref)...)
	if c.Err == nil {
		t.Errorf("cosign verify accepted another identity: %s", c)
	}

	// botcore verify, by SERVICE:TAG under --registry, resolves the tag.
	r = botcore(t, env, "", append(append([]string{"verify"}, verifyArgs(identity)...), svc+":v1.0.0")...)
	if r.code != 0 || !strings.Contains(r.stdout, digest) || !strings.Contains(r.stdout, "1 signature by "+identity+" (issuer "+s.Issuer.URL+")") {
		t.Errorf("botcore verify: %s", r)
	}
	// SIGSTORE_ROOT_FILE stands in for --ca-roots; --json reports the digest.
	args := []string{"--json", "verify", "--certificate-identity-regexp", `^release-bot@`, "--certificate-oidc-issuer", s.Issuer.URL, "--insecure-ignore-tlog", "--insecure-ignore-sct", repo + ":v1.0.0"}
	r = botcore(t, envWith(env, map[string]string{"SIGSTORE_ROOT_FILE": s.Fulcio.RootFile}), "", args...)
	rep := decodeStdout[verifyReport](t, r)
	if r.code != 0 || rep.Digest != digest || len(rep.Verified) != 1 || rep.Verified[0].SignedBy[0].Identity != identity || rep.Verified[0].Tlog {
		t.Errorf("verify --json: %+v\n%s", rep, r)
	}
	// Another identity or issuer: one sentence naming who did sign.
	r = botcore(t, env, "", append(append([]string{"verify"}, verifyArgs("mallory@bot-core.test")...), svc+":v1.0.0")...)
	wantError(t, r, "no signature of "+ref+" was made by mallory@bot-core.test", "it was signed by "+identity)
	args = append(verifyArgs(identity), svc+":v1.0.0")
	args[3] = "https://token.actions.githubusercontent.com"
	r = botcore(t, env, "", append([]string{"verify"}, args...)...)
	wantError(t, r, "(issuer https://token.actions.githubusercontent.com)", "check --certificate-identity and --certificate-oidc-issuer")
	// Without the private Fulcio's root, the chain is not trusted.
	other := filepath.Join(t.TempDir(), "other-root.pem")
	otherFulcio := sigstoretest.StartFulcio(t, s.Issuer)
	if err := os.WriteFile(other, otherFulcio.RootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	args = verifyArgs(identity)
	args[5] = other
	r = botcore(t, env, "", append(append([]string{"verify"}, args...), svc+":v1.0.0")...)
	wantError(t, r, "were not issued by a trusted Fulcio", "--ca-roots")

	// An SPDX attestation, signed with a token from SIGSTORE_ID_TOKEN.
	pred := filepath.Join(t.TempDir(), "sbom.spdx.json")
	if err := os.WriteFile(pred, []byte(spdxPredicate), 0o644); err != nil {
		t.Fatal(err)
	}
	token := s.Issuer.Token(t, sigstoretest.TokenClaims{Email: identity})
	attEnv := envWith(envFor(t, srv), map[string]string{"SIGSTORE_ID_TOKEN": token})
	r = botcore(t, attEnv, "", append(append([]string{"--json", "attest", "--predicate", pred, "--type", "spdxjson"}, signArgs...), ref)...)
	if r.code != 0 {
		t.Fatal(r)
	}
	wantNoSecrets(t, r, token)
	att := decodeStdout[[]signing.Result](t, r)
	if len(att) != 1 || att[0].Attestation != repo+":sha256-"+hex+".att" || att[0].PredicateType != "https://spdx.dev/Document" || att[0].CertificateIdentity != identity {
		t.Errorf("attest --json: %+v", att)
	}
	c = s.Cosign(t, nil, append(append(append([]string{"verify-attestation", "--type", "spdxjson"}, cosignAuth...), s.KeylessVerifyArgs(identity)...), ref)...)
	var envelope struct{ Payload []byte }
	if err := json.Unmarshal([]byte(c.Stdout), &envelope); c.Err != nil || err != nil || !strings.Contains(string(envelope.Payload), `"spdxVersion":"SPDX-2.3"`) {
		t.Errorf("cosign verify-attestation: %s", c)
	}
	r = botcore(t, env, "", append(append([]string{"verify", "--attestation-type", "spdxjson"}, verifyArgs(identity)...), svc+":v1.0.0")...)
	if r.code != 0 || !strings.Contains(r.stdout, "attestation https://spdx.dev/Document  1 signature by "+identity) {
		t.Errorf("verify --attestation-type spdxjson: %s", r)
	}
	r = botcore(t, env, "", append(append([]string{"verify", "--attestation-type", "cyclonedx"}, verifyArgs(identity)...), svc+":v1.0.0")...)
	wantError(t, r, "has valid attestations, but none of type cyclonedx")

	// A different image pushed under the same tag is not signed.
	moved := srv.Push(t, repo+":v1.0.0", registrytest.Index(t, map[string]string{labels.LabelVersion: "v1.0.0"}, time.Time{}))
	r = botcore(t, env, "", append(append([]string{"verify"}, verifyArgs(identity)...), svc+":v1.0.0")...)
	wantError(t, r, repo+"@"+moved+" is not signed", "botcore sign "+repo+"@"+moved)
	c = s.Cosign(t, nil, append(append(append([]string{"verify"}, cosignAuth...), s.KeylessVerifyArgs(identity)...), repo+":v1.0.0")...)
	if c.Err == nil {
		t.Errorf("cosign verified a moved tag: %s", c)
	}
}

// TestSignThroughConnectTo signs keylessly with the GitHub Actions token
// endpoint and Fulcio reached only through --connect-to aliases, as in the
// pipeline's container.
func TestSignThroughConnectTo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Fulcio")
	}
	s := sigstoretest.Start(t)
	srv := registrytest.NewBasic(t)
	digest := seedRelease(t, srv, svc, "v1.0.0")
	fulcioPort := s.Fulcio.URL[strings.LastIndex(s.Fulcio.URL, ":")+1:]
	issuerPort := s.Issuer.URL[strings.LastIndex(s.Issuer.URL, ":")+1:]
	env := envWith(envFor(t, srv), map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL":   "http://token.actions.botcore.test/actions/id-token?api-version=2.0",
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": s.Issuer.ActionsRequestToken,
		"BOTCORE_CONNECT_TO":             "token.actions.botcore.test:80:127.0.0.1:" + issuerPort,
	})
	r := botcore(t, env, "", "--json", "--connect-to", "fulcio.botcore.test:443:127.0.0.1:"+fulcioPort,
		"--connect-to", "token.actions.botcore.test:80:127.0.0.1:"+issuerPort,
		"sign", "--fulcio-url", "http://fulcio.botcore.test:443", "--tlog-upload=false", "--insecure-ignore-sct", svc+"@"+digest)
	if r.code != 0 {
		t.Fatal(r)
	}
	if got := decodeStdout[[]signing.Result](t, r); len(got) != 1 || got[0].FulcioURL != "http://fulcio.botcore.test:443" || got[0].CertificateIdentity != sigstoretest.DefaultEmail {
		t.Errorf("sign: %+v", got)
	}
	// Without the alias nothing resolves.
	delete(env, "BOTCORE_CONNECT_TO")
	r = botcore(t, env, "", "sign", "--fulcio-url", "http://fulcio.botcore.test:443", "--tlog-upload=false", "--insecure-ignore-sct", svc+"@"+digest)
	wantError(t, r, "cannot reach the GitHub Actions ID-token endpoint at token.actions.botcore.test")
}

// TestSignWithKey signs with an encrypted cosign key from env:VAR and
// checks the real cosign CLI and botcore agree on which key verifies.
func TestSignWithKey(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Fulcio and the cosign CLI")
	}
	s := sigstoretest.Start(t)
	const password = "planted-Password-4711"
	kp := sigstoretest.NewKeyPair(t, password)
	other := sigstoretest.NewKeyPair(t, "")

	srv := registrytest.NewBasic(t)
	repo := srv.Host + "/bot/" + svc
	digest := seedRelease(t, srv, svc, "v2.0.0")
	env := envWith(envFor(t, srv), map[string]string{
		"COSIGN_KEY":      string(kp.PrivatePEM),
		"COSIGN_PASSWORD": password,
		"COSIGN_PUB":      string(kp.PublicPEM),
	})
	pemBody := strings.Split(string(kp.PrivatePEM), "\n")[1]

	r := botcore(t, env, "", "--json", "sign", "--key", "env:COSIGN_KEY", "--tlog-upload=false", "--recursive", svc+"@"+digest)
	if r.code != 0 {
		t.Fatal(r)
	}
	wantNoSecrets(t, r, password, pemBody, srv.Password)
	got := decodeStdout[[]signing.Result](t, r)
	if len(got) != 3 || got[0].Digest != digest || got[0].Mode != signing.ModeKey || got[0].Key != "env:COSIGN_KEY" || got[0].Tlog || got[0].FulcioURL != "" {
		t.Fatalf("sign --json: %+v", got)
	}

	cosignAuth := []string{"--registry-username", srv.User, "--registry-password", srv.Password}
	for _, d := range got {
		c := s.Cosign(t, nil, append(append([]string{"verify", "--key", kp.PublicFile, "--insecure-ignore-tlog"}, cosignAuth...), d.Reference)...)
		if c.Err != nil {
			t.Errorf("cosign verify --key %s: %s", d.Reference, c)
		}
	}
	c := s.Cosign(t, nil, append(append([]string{"verify", "--key", other.PublicFile, "--insecure-ignore-tlog"}, cosignAuth...), repo+"@"+digest)...)
	if c.Err == nil {
		t.Errorf("cosign verified with another key: %s", c)
	}

	// botcore verify: the public key from a file or env://, every platform.
	r = botcore(t, env, "", "verify", "--key", "env://COSIGN_PUB", "--insecure-ignore-tlog", "--recursive", svc+":v2.0.0")
	if r.code != 0 || strings.Count(r.stdout, "1 signature by key env://COSIGN_PUB") != 3 {
		t.Errorf("verify --recursive: %s", r)
	}
	r = botcore(t, env, "", "verify", "--key", other.PublicFile, "--insecure-ignore-tlog", svc+":v2.0.0")
	wantError(t, r, "no signature of "+repo+"@"+digest+" verifies with the key "+other.PublicFile)
	r = botcore(t, env, "", "verify", "--key", kp.PrivateFile, "--insecure-ignore-tlog", svc+":v2.0.0")
	wantError(t, r, "is a private key: verify with the public key")

	// Secrets stay out of failures too.
	r = botcore(t, envWith(env, map[string]string{"COSIGN_PASSWORD": "wrong-" + password}), "", "sign", "--key", "env:COSIGN_KEY", "--tlog-upload=false", svc+"@"+digest)
	wantError(t, r, "cannot decrypt the signing key env:COSIGN_KEY: COSIGN_PASSWORD is not its password")
	wantNoSecrets(t, r, password, pemBody)
	r = botcore(t, envWith(env, map[string]string{"COSIGN_PASSWORD": ""}), "", "sign", "--key", "env:COSIGN_KEY", "--tlog-upload=false", svc+"@"+digest)
	wantError(t, r, "it is encrypted, so set COSIGN_PASSWORD to its password")
	for _, args := range [][]string{{"--key", string(kp.PrivatePEM)}, {"--key=" + string(kp.PrivatePEM)}} {
		r = botcore(t, env, "", append(append([]string{"sign"}, args...), svc+"@"+digest)...)
		if r.code != 2 || !strings.Contains(r.stderr, "--key") || !strings.Contains(r.stderr, "not the key itself: put the key in a file or an environment variable") {
			t.Errorf("a pasted key: %s", r)
		}
		wantNoSecrets(t, r, pemBody)
	}
}

func TestSignUsage(t *testing.T) {
	srv := registrytest.NewBasic(t)
	digest := seedRelease(t, srv, svc, "v1.0.0")
	env := envFor(t, srv)

	r := botcore(t, env, "", "sign", svc+":v1.0.0")
	wantError(t, r, "refusing to sign the tag "+svc+":v1.0.0: sign digests, never tags", srv.Host+"/bot/"+svc+"@sha256:<digest>")
	r = botcore(t, env, "", "attest", "--predicate", "x.json", "--type", "spdxjson", srv.Host+"/bot/"+svc+":v1.0.0")
	wantError(t, r, "refusing to attest the tag")
	r = botcore(t, env, "", "attest", "--predicate", "x.json", "--type", "sbom", svc+"@"+digest)
	wantError(t, r, `unknown predicate type "sbom": give one of`, "spdxjson")

	// Keyless without any token source.
	r = botcore(t, env, "", "sign", "--tlog-upload=false", svc+"@"+digest)
	wantError(t, r, "keyless signing needs an OIDC identity token", ": pass --identity-token, set SIGSTORE_ID_TOKEN, or sign with --key")
	// A GitHub Actions request token the endpoint refuses.
	i := sigstoretest.NewIssuer(t)
	r = botcore(t, envWith(env, map[string]string{"ACTIONS_ID_TOKEN_REQUEST_URL": i.ActionsRequestURL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "not-the-request-token"}),
		"", "sign", svc+"@"+digest)
	wantError(t, r, "refused the request token (HTTP 401): give the job `permissions: id-token: write`")
	wantNoSecrets(t, r, "not-the-request-token")
	// An expired token is caught before Fulcio is asked.
	expired := i.Token(t, sigstoretest.TokenClaims{TTL: -time.Minute})
	r = botcore(t, env, "", "sign", "--identity-token", expired, svc+"@"+digest)
	wantError(t, r, "the given identity token (issuer "+i.URL+") expired at")
	wantNoSecrets(t, r, expired)

	// The signing library says what is wrong; the command adds the flag
	// that fixes it.
	token := i.Token(t, sigstoretest.TokenClaims{})
	r = botcore(t, env, "", "sign", "--identity-token", token, "--key", "cosign.key", svc+"@"+digest)
	wantError(t, r, "a signing key and an OIDC token were both given", ": drop --identity-token or drop --key")
	wantNoSecrets(t, r, token)
	r = botcore(t, env, "", "sign", "--identity-token", token, "--rekor-url", "ftp://rekor.test", svc+"@"+digest)
	wantError(t, r, `the Rekor URL "ftp://rekor.test" is not an http(s) URL: check --rekor-url`)
	r = botcore(t, env, "", "sign", "--identity-token", token, "--fulcio-url", "http://127.0.0.1:1", "--tlog-upload=false", svc+"@"+digest)
	wantError(t, r, "cannot reach Fulcio at http://127.0.0.1:1", ": check --fulcio-url and the network")
	wantNoSecrets(t, r, token)
	r = botcore(t, env, "", "verify", "--certificate-identity-regexp", "(", "--certificate-oidc-issuer", i.URL, svc+":v1.0.0")
	wantError(t, r, "the certificate identity pattern is not a valid regular expression", ": fix --certificate-identity-regexp")

	r = botcore(t, env, "", "verify", svc+":v1.0.0")
	wantError(t, r, "give the key (--key) or the expected signer")
	r = botcore(t, env, "", "verify", "--certificate-identity", "a@b.c", svc+":v1.0.0")
	wantError(t, r, "keyless verification needs the expected OIDC issuer")
	r = botcore(t, env, "", "verify", "--key", "cosign.pub", "--certificate-identity", "a@b.c", svc+":v1.0.0")
	wantError(t, r, "give one or the other")
}

// TestCosignSignsBotcoreVerifies is the other direction: the real cosign
// CLI signs keylessly with its own github-actions provider fetching the
// token from the harness's (non-GitHub) endpoint, and botcore verifies.
func TestCosignSignsBotcoreVerifies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Fulcio and the cosign CLI")
	}
	s := sigstoretest.Start(t)
	const identity = "cosign-cli@bot-core.test"
	s.Issuer.SetActionsIdentity(sigstoretest.TokenClaims{Email: identity})
	srv := registrytest.NewBasic(t)
	digest := seedRelease(t, srv, svc, "v3.0.0")
	ref := srv.Host + "/bot/" + svc + "@" + digest

	c := s.Cosign(t, s.Issuer.ActionsEnv(), "sign", "--yes", "--fulcio-url", s.Fulcio.URL, "--insecure-skip-verify", "--tlog-upload=false",
		"--registry-username", srv.User, "--registry-password", srv.Password, ref)
	if c.Err != nil {
		t.Fatalf("cosign sign: %s", c)
	}
	if s.Issuer.ActionsFetches() != 1 {
		t.Errorf("cosign fetched %d tokens from the Actions endpoint, want 1", s.Issuer.ActionsFetches())
	}
	r := botcore(t, envFor(t, srv), "", "verify", "--certificate-identity", identity, "--certificate-oidc-issuer", s.Issuer.URL,
		"--ca-roots", s.Fulcio.RootFile, "--insecure-ignore-tlog", "--insecure-ignore-sct", svc+":v3.0.0")
	if r.code != 0 || !strings.Contains(r.stdout, "1 signature by "+identity) {
		t.Errorf("botcore verify of a cosign signature: %s", r)
	}
}
