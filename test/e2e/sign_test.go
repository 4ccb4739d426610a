package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bot-core/delivery/pipelines/provenance"
	"github.com/bot-core/delivery/pipelines/release"
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
			"--git-ref", "refs/tags/v3.0.0", "--git-sha", keylessSHA, "--source-url", sourceURL, "--source-date-epoch", "1700000000",
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
		if m.Tool == nil || m.Tool.Source != "engine" || len(m.Tool.SHA256) != 64 {
			t.Errorf("release.json tool %+v, want the one built in the engine", m.Tool)
		}
		svc := m.Services[0]
		rel.index, rel.platforms = svc.IndexDigest, svc.Platforms
		if len(svc.Signed) != 1+len(svc.Platforms) || len(svc.Attested) != len(svc.Platforms) {
			t.Errorf("signed %v, attested %v: want the index and every platform manifest", svc.Signed, svc.Attested)
		}
		if !slices.Equal(svc.Attestations, []string{"spdxjson", "slsaprovenance1", "vuln"}) {
			t.Errorf("release.json attestations %v, want the SBOM, the provenance and the scan", svc.Attestations)
		}
		t.Log(stageTime(stderr, "sign+attest"))
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
			checkProvenance(t, s, verify, ref, d, wantProvenance{version: "v3.0.0", gitRef: "refs/tags/v3.0.0", gitSHA: keylessSHA, sourceURL: sourceURL, epoch: 1700000000, tool: m.Tool})
			checkVulnAttestation(t, s, verify, ref, d)
		}
		wrong := s.KeylessVerifyArgs("someone-else@example.com")
		for _, typ := range []string{"slsaprovenance1", "vuln"} {
			for _, d := range svc.Platforms {
				if r := s.Cosign(t, nil, append(append([]string{"verify-attestation", "--type", typ}, wrong...), repo+"@"+d)...); r.Err == nil {
					t.Errorf("cosign verify-attestation --type %s accepted a wrong identity: %s", typ, r)
				}
			}
		}
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
		// This release scans and signs with a botcore the test built on the
		// host, as the workflow does.
		tool := hostTool(t)
		stdout, stderr := daggerCallLogs(t, append(append([]string{"--tool", tool.path}, common...), "--version", "v3.1.0", "--platforms", "linux/amd64",
			"--git-ref", "refs/heads/main", "--git-sha", keySHA,
			"--cosign-key", "env:BOTCORE_TEST_COSIGN_KEY", "--cosign-password", "env:BOTCORE_TEST_COSIGN_PASSWORD",
			"export", "--path", out)...)
		logs.WriteString(stdout + stderr)
		m := readRelease(t, out)
		if m.Signing == nil || m.Signing.Mode != "key" {
			t.Fatalf("release.json signing = %+v, want key", m.Signing)
		}
		if m.Tool == nil || m.Tool.Source != "given" || m.Tool.SHA256 != tool.sha256 {
			t.Errorf("release.json tool %+v, want the given binary (sha256 %s)", m.Tool, tool.sha256)
		}
		ref := prefix + "/rust-core-engine:v3.1.0"
		if r := s.Cosign(t, nil, "verify", "--key", kp.PublicFile, "--insecure-ignore-tlog", ref); r.Err != nil {
			t.Errorf("cosign verify --key: %s", r)
		}
		if r := s.Cosign(t, nil, "verify", "--key", other.PublicFile, "--insecure-ignore-tlog", ref); r.Err == nil {
			t.Errorf("cosign verify accepted a different key: %s", r)
		}
		t.Log(stageTime(stderr, "sign+attest"))
		svc := m.Services[0]
		byKey := []string{"--key", kp.PublicFile, "--insecure-ignore-tlog"}
		for _, d := range svc.Platforms {
			pref := prefix + "/rust-core-engine@" + d
			checkProvenance(t, s, byKey, pref, d, wantProvenance{version: "v3.1.0", gitRef: "refs/heads/main", gitSHA: keySHA, tool: m.Tool,
				// No --source-date-epoch: the commit time of the checkout.
				epoch: headCommitTime(t)})
			checkVulnAttestation(t, s, byKey, pref, d)
			for _, typ := range []string{"slsaprovenance1", "vuln"} {
				if r := s.Cosign(t, nil, "verify-attestation", "--type", typ, "--key", other.PublicFile, "--insecure-ignore-tlog", pref); r.Err == nil {
					t.Errorf("cosign verify-attestation --type %s accepted a different key: %s", typ, r)
				}
			}
		}
		planted = append(planted, strings.TrimSpace(string(kp.PrivatePEM)))
	})

	t.Run("no planted secret in logs, exports or the registry", func(t *testing.T) {
		checkNoSecrets(t, logs.Bytes(), exports, reg, planted...)
	})
}

// checkNoSecrets searches the call's logs, every file exported under dir (if any, gzipped layers also unpacked) and
// every manifest, config and uncompressed layer in the registry for each
// planted secret.
func checkNoSecrets(t *testing.T, logs []byte, dir, reg string, planted ...string) {
	t.Helper()
	haystacks := map[string][]byte{"dagger logs": logs}
	if dir != "" {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(p)
				haystacks[p] = b
				// Layers are gzipped: a secret in one shows only unpacked.
				if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
					if u, err := io.ReadAll(zr); err == nil {
						haystacks[p+" (unpacked)"] = u
					}
				}
			}
			return nil
		})
	}
	if reg != "" {
		for what, b := range registryBlobs(t, reg) {
			haystacks[what] = b
		}
	}
	for what, b := range haystacks {
		for _, secret := range planted {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s contains a planted secret (%.12s...)", what, secret)
			}
		}
	}
	t.Logf("searched %d logs, files and blobs", len(haystacks))
}

const (
	sourceURL  = "https://github.com/acme/bot-core"
	keylessSHA = "3f786850e387550fdab836ed7e6dc881de23001b"
	keySHA     = "89e6c98d92887913cadf06b2adb97f26cde4849b"
)

// stageTime is build-all's "stage NAME: N s" line from the call's logs.
func stageTime(logs, stage string) string {
	for _, l := range strings.Split(logs, "\n") {
		if i := strings.Index(l, "stage "+stage+": "); i >= 0 {
			return strings.TrimSpace(l[i:])
		}
	}
	return "no stage " + stage + " line"
}

// attestationStatements runs cosign verify-attestation --type typ on ref
// and returns the in-toto statements of the verified envelopes.
func attestationStatements(t *testing.T, s *sigstoretest.Sigstore, policy []string, ref, typ string) []json.RawMessage {
	t.Helper()
	r := s.Cosign(t, nil, append(append([]string{"verify-attestation", "--type", typ}, policy...), ref)...)
	if r.Err != nil {
		t.Errorf("cosign verify-attestation --type %s %s: %s", typ, ref, r)
		return nil
	}
	var out []json.RawMessage
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var env struct{ Payload string }
		if err := json.Unmarshal([]byte(line), &env); err != nil {
			t.Fatalf("cosign printed %q: %v", line, err)
		}
		st, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
	}
	if len(out) == 0 {
		t.Errorf("cosign verify-attestation --type %s %s printed no attestation", typ, ref)
	}
	return out
}

type wantProvenance struct {
	version, gitRef, gitSHA, sourceURL string
	epoch                              int64
	// tool is the botcore binary release.json names.
	tool *release.Tool
}

var digestShaped = regexp.MustCompile(`^[^@\s]+@sha256:[0-9a-f]{64}$`)

// checkProvenance verifies the SLSA v1 provenance of one platform manifest
// with cosign and reads it field by field.
func checkProvenance(t *testing.T, s *sigstoretest.Sigstore, policy []string, ref, digest string, want wantProvenance) {
	t.Helper()
	for _, raw := range attestationStatements(t, s, policy, ref, "slsaprovenance1") {
		var st struct {
			PredicateType string `json:"predicateType"`
			Subject       []struct {
				Digest map[string]string `json:"digest"`
			} `json:"subject"`
			Predicate struct {
				BuildDefinition struct {
					BuildType            string         `json:"buildType"`
					ExternalParameters   map[string]any `json:"externalParameters"`
					ResolvedDependencies []struct {
						Name        string            `json:"name"`
						URI         string            `json:"uri"`
						Digest      map[string]string `json:"digest"`
						Annotations map[string]any    `json:"annotations"`
					} `json:"resolvedDependencies"`
				} `json:"buildDefinition"`
				RunDetails struct {
					Builder struct {
						ID      string            `json:"id"`
						Version map[string]string `json:"version"`
					} `json:"builder"`
					Metadata struct {
						InvocationID string    `json:"invocationId"`
						StartedOn    time.Time `json:"startedOn"`
						FinishedOn   time.Time `json:"finishedOn"`
					} `json:"metadata"`
				} `json:"runDetails"`
			} `json:"predicate"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatalf("provenance statement: %v\n%s", err, raw)
		}
		bd, rd := st.Predicate.BuildDefinition, st.Predicate.RunDetails
		if st.PredicateType != provenance.PredicateType || len(st.Subject) != 1 || "sha256:"+st.Subject[0].Digest["sha256"] != digest {
			t.Errorf("%s: statement %s about %v", ref, st.PredicateType, st.Subject)
		}
		if bd.BuildType != provenance.BuildType || rd.Builder.ID != provenance.BuilderID || rd.Builder.Version["dagger"] == "" {
			t.Errorf("%s: buildType %q, builder %+v", ref, bd.BuildType, rd.Builder)
		}
		ep := bd.ExternalParameters
		for k, v := range map[string]any{"version": want.version, "gitRef": want.gitRef, "gitSha": want.gitSHA, "sourceUrl": want.sourceURL,
			"sourceDateEpoch": float64(want.epoch), "registry": strings.Split(ref, "/rust-core-engine@")[0], "ignoreUnfixed": false} {
			if ep[k] != v {
				t.Errorf("%s: externalParameters.%s = %v, want %v", ref, k, ep[k], v)
			}
		}
		if fmt.Sprint(ep["services"]) != "[rust-core-engine]" || fmt.Sprint(ep["severity"]) != "[HIGH CRITICAL]" || ep["platforms"] == nil {
			t.Errorf("%s: externalParameters %v", ref, ep)
		}
		var source, bases, tools int
		for _, d := range bd.ResolvedDependencies {
			switch {
			case d.Name == provenance.ToolName:
				tools++
				if want.tool == nil || d.Digest["sha256"] != want.tool.SHA256 || d.Annotations["source"] != want.tool.Source ||
					d.Annotations["trivy"] != want.tool.Libraries["trivy"] || d.Annotations["version"] != want.tool.Version {
					t.Errorf("%s: tool %+v, want release.json's %+v", ref, d, want.tool)
				}
			case d.Name == "source":
				source++
				wantURI := "git+" + want.sourceURL + "@" + want.gitRef
				if want.sourceURL == "" {
					wantURI = ""
				}
				if d.URI != wantURI || d.Digest["gitCommit"] != want.gitSHA {
					t.Errorf("%s: source %+v, want %s at %s", ref, d, wantURI, want.gitSHA)
				}
			default:
				bases++
				ref := strings.TrimPrefix(d.URI, "oci://")
				if !digestShaped.MatchString(ref) || !strings.HasSuffix(ref, "@sha256:"+d.Digest["sha256"]) || d.Name == "" {
					t.Errorf("%s: base image %+v is not digest-qualified", ref, d)
				}
			}
		}
		if source != 1 || bases != 3 || tools != 1 {
			t.Errorf("%s: resolvedDependencies %+v, want the source, the Rust builder and runtime, the Go image of the prober and the botcore tool", ref, bd.ResolvedDependencies)
		}
		m := rd.Metadata
		if m.InvocationID == "" || m.StartedOn.IsZero() || m.FinishedOn.Before(m.StartedOn) || time.Since(m.StartedOn) > time.Hour {
			t.Errorf("%s: metadata %+v", ref, m)
		}
	}
}

// checkVulnAttestation verifies the vulnerability attestation of one
// platform manifest with cosign: Trivy's cosign-vuln predicate of this image.
func checkVulnAttestation(t *testing.T, s *sigstoretest.Sigstore, policy []string, ref, digest string) {
	t.Helper()
	for _, raw := range attestationStatements(t, s, policy, ref, "vuln") {
		var st struct {
			PredicateType string `json:"predicateType"`
			Predicate     struct {
				Scanner struct {
					URI     string `json:"uri"`
					Version string `json:"version"`
					Result  struct {
						SchemaVersion int
						ArtifactName  string
						ArtifactType  string
						Results       []struct{ Target string }
					} `json:"result"`
				} `json:"scanner"`
				Metadata struct {
					ScanStartedOn time.Time `json:"scanStartedOn"`
				} `json:"metadata"`
			} `json:"predicate"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatalf("vuln statement: %v\n%s", err, raw)
		}
		sc := st.Predicate.Scanner
		if st.PredicateType != "https://cosign.sigstore.dev/attestation/vuln/v1" || sc.Version == "" || sc.URI != "pkg:github/aquasecurity/trivy@"+sc.Version {
			t.Errorf("%s: %s by scanner %q %q", ref, st.PredicateType, sc.URI, sc.Version)
		}
		if sc.Result.SchemaVersion != 2 || sc.Result.ArtifactType != "container_image" || len(sc.Result.Results) == 0 || st.Predicate.Metadata.ScanStartedOn.IsZero() {
			t.Errorf("%s: scan result %+v, started %v", ref, sc.Result, st.Predicate.Metadata.ScanStartedOn)
		}
	}
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
