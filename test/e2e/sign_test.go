package e2e

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bot-core/delivery/test/sigstoretest"
)

// hostPort is the tcp:// form of a URL's host for --host-services.
func hostPort(t testing.TB, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return "tcp://" + u.Host
}

// TestSigning publishes with build-all, signing keylessly through the
// GitHub Actions token path (a local endpoint answering like Actions'), a
// real Fulcio, and checks the result with the real cosign CLI; then signs
// with a key. Rekor cannot run here, so both runs pass --no-tlog (recorded in
// release.json) and cosign verifies with --insecure-ignore-tlog.
func TestSigning(t *testing.T) {
	s := sigstoretest.Start(t)
	identity := "release@acme.example"
	s.Issuer.SetActionsIdentity(sigstoretest.TokenClaims{Email: identity})
	reg := startRegistry(t)
	prefix := reg + "/signed"

	// Planted secrets: none may show up in logs, exports or the registry.
	const registryPassword = "planted-registry-password-5f1c"
	const cosignPassword = "planted-cosign-password-93ab"
	t.Setenv("BOTCORE_TEST_REGISTRY_PASSWORD", registryPassword)
	for k, v := range s.Issuer.ActionsEnv() {
		t.Setenv(k, v)
	}
	planted := []string{registryPassword, cosignPassword, s.Issuer.ActionsRequestToken}

	common := []string{"build-all", "--trivy-db", offlineDB(t), "--services", "rust-core-engine",
		"--registry", prefix, "--registry-service", "tcp://" + reg,
		"--registry-username", "ci", "--registry-password", "env:BOTCORE_TEST_REGISTRY_PASSWORD", "--no-tlog"}
	var logs bytes.Buffer
	exports := t.TempDir()

	var rel struct {
		index     string
		platforms map[string]string
	}
	t.Run("keyless through the Actions token endpoint, verified by cosign", func(t *testing.T) {
		out := filepath.Join(exports, "keyless")
		stdout, stderr := daggerCallLogs(t, append(common, "--version", "v3.0.0",
			"--oidc-request-url", "env:ACTIONS_ID_TOKEN_REQUEST_URL", "--oidc-request-token", "env:ACTIONS_ID_TOKEN_REQUEST_TOKEN",
			"--fulcio-url", s.Fulcio.URL, "--insecure-ignore-sct", "--host-services", hostPort(t, s.Fulcio.URL)+","+hostPort(t, s.Issuer.URL),
			"export", "--path", out)...)
		logs.WriteString(stdout + stderr)
		m := readRelease(t, out)
		if m.Signing == nil || m.Signing.Mode != "keyless" || m.Signing.Tlog || m.Signing.FulcioURL != s.Fulcio.URL {
			t.Fatalf("release.json signing = %+v, want keyless via %s without tlog", m.Signing, s.Fulcio.URL)
		}
		if s.Issuer.ActionsFetches() == 0 {
			t.Error("the Actions ID-token endpoint was never asked for a token")
		}
		svc := m.Services[0]
		rel.index, rel.platforms = svc.IndexDigest, svc.Platforms
		if len(svc.Signed) != 1+len(svc.Platforms) || len(svc.Attested) != len(svc.Platforms) {
			t.Errorf("signed %v, attested %v: want the index and every platform manifest", svc.Signed, svc.Attested)
		}
		repo := prefix + "/rust-core-engine"
		if len(svc.Signatures) != len(svc.Signed)+len(svc.Attested) {
			t.Errorf("release.json lists signature references %v", svc.Signatures)
		}
		for _, ref := range svc.Signatures {
			r, err := name.ParseReference(ref)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := remote.Head(r); err != nil {
				t.Errorf("signature reference %s from release.json: %v", ref, err)
			}
		}
		verify := s.KeylessVerifyArgs(identity)
		for _, ref := range []string{repo + ":v3.0.0", repo + "@" + svc.IndexDigest} {
			if r := s.Cosign(t, nil, append(append([]string{"verify"}, verify...), ref)...); r.Err != nil {
				t.Errorf("cosign verify %s: %s", ref, r)
			}
		}
		for p, d := range svc.Platforms {
			ref := repo + "@" + d
			if r := s.Cosign(t, nil, append(append([]string{"verify"}, verify...), ref)...); r.Err != nil {
				t.Errorf("cosign verify %s (%s): %s", ref, p, r)
			}
			r := s.Cosign(t, nil, append(append([]string{"verify-attestation", "--type", "spdxjson"}, verify...), ref)...)
			if r.Err != nil {
				t.Errorf("cosign verify-attestation %s (%s): %s", ref, p, r)
			}
		}
		wrong := s.KeylessVerifyArgs("someone-else@example.com")
		if r := s.Cosign(t, nil, append(append([]string{"verify"}, wrong...), repo+":v3.0.0")...); r.Err == nil {
			t.Errorf("cosign verify accepted a wrong identity: %s", r)
		}
	})

	t.Run("an image re-pushed under the signed tag fails verification by tag", func(t *testing.T) {
		if rel.index == "" {
			t.Skip("needs the keyless release above")
		}
		repo := prefix + "/rust-core-engine"
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		tag, _ := name.NewTag(repo + ":v3.0.0")
		if err := remote.Write(tag, img); err != nil {
			t.Fatal(err)
		}
		if r := s.Cosign(t, nil, append(append([]string{"verify"}, s.KeylessVerifyArgs(identity)...), tag.String())...); r.Err == nil {
			t.Errorf("cosign verify accepted the re-pushed tag: %s", r)
		}
		if r := s.Cosign(t, nil, append(append([]string{"verify"}, s.KeylessVerifyArgs(identity)...), repo+"@"+rel.index)...); r.Err != nil {
			t.Errorf("the original digest no longer verifies: %s", r)
		}
	})

	t.Run("key-based signing verifies with that key and no other", func(t *testing.T) {
		kp := sigstoretest.NewKeyPair(t, cosignPassword)
		other := sigstoretest.NewKeyPair(t, "")
		t.Setenv("BOTCORE_TEST_COSIGN_KEY", string(kp.PrivatePEM))
		t.Setenv("BOTCORE_TEST_COSIGN_PASSWORD", cosignPassword)
		out := filepath.Join(exports, "key")
		stdout, stderr := daggerCallLogs(t, append(common, "--version", "v3.1.0", "--platforms", "linux/amd64",
			"--cosign-key", "env:BOTCORE_TEST_COSIGN_KEY", "--cosign-password", "env:BOTCORE_TEST_COSIGN_PASSWORD",
			"export", "--path", out)...)
		logs.WriteString(stdout + stderr)
		m := readRelease(t, out)
		if m.Signing == nil || m.Signing.Mode != "key" {
			t.Fatalf("release.json signing = %+v, want key", m.Signing)
		}
		ref := prefix + "/rust-core-engine:v3.1.0"
		if r := s.Cosign(t, nil, "verify", "--key", kp.PublicFile, "--insecure-ignore-tlog", ref); r.Err != nil {
			t.Errorf("cosign verify --key: %s", r)
		}
		if r := s.Cosign(t, nil, "verify", "--key", other.PublicFile, "--insecure-ignore-tlog", ref); r.Err == nil {
			t.Errorf("cosign verify accepted a different key: %s", r)
		}
		planted = append(planted, strings.TrimSpace(string(kp.PrivatePEM)))
	})

	t.Run("no planted secret in logs, exports or the registry", func(t *testing.T) {
		haystacks := map[string][]byte{"dagger logs": logs.Bytes()}
		_ = filepath.WalkDir(exports, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(p)
				haystacks[p] = b
			}
			return nil
		})
		for what, b := range registryBlobs(t, reg) {
			haystacks[what] = b
		}
		for what, b := range haystacks {
			for _, secret := range planted {
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s contains a planted secret (%.12s...)", what, secret)
				}
			}
		}
		t.Logf("searched %d logs, files and blobs", len(haystacks))
	})
}

// daggerCallLogs is daggerCall returning stdout and stderr.
func daggerCallLogs(t *testing.T, args ...string) (string, string) {
	t.Helper()
	stderr, err := daggerCallErr(t, repoRoot(t), args...)
	if err != nil {
		t.Fatalf("dagger call %s: %v\n--- stderr ---\n%s", strings.Join(args, " "), err, tail(stderr, 60))
	}
	return "", stderr
}

// registryBlobs reads every manifest, config and uncompressed layer of every
// repository in the registry: images, signatures and attestations alike.
func registryBlobs(t *testing.T, reg string) map[string][]byte {
	t.Helper()
	r, err := name.NewRegistry(reg)
	if err != nil {
		t.Fatal(err)
	}
	repos, err := remote.Catalog(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, rp := range repos {
		repo := r.Repo(rp)
		tags, err := remote.List(repo)
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range tags {
			desc, err := remote.Get(repo.Tag(tg))
			if err != nil {
				t.Fatal(err)
			}
			out[repo.Tag(tg).String()] = desc.Manifest
			if desc.MediaType.IsIndex() {
				idx, _ := desc.ImageIndex()
				im, _ := idx.IndexManifest()
				for _, m := range im.Manifests {
					if img, err := idx.Image(m.Digest); err == nil {
						addImage(out, repo.String()+"@"+m.Digest.String(), img)
					}
				}
			} else if img, err := desc.Image(); err == nil {
				addImage(out, repo.Tag(tg).String(), img)
			}
		}
	}
	return out
}

func addImage(out map[string][]byte, ref string, img v1.Image) {
	if b, err := img.RawManifest(); err == nil {
		out[ref+" manifest"] = b
	}
	if b, err := img.RawConfigFile(); err == nil {
		out[ref+" config"] = b
	}
	layers, _ := img.Layers()
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		out[ref+" layer "+strconv.Itoa(i)] = b
	}
}
