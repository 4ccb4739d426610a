package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bot-core/delivery/pipelines/provenance"
	"github.com/bot-core/delivery/pipelines/registry/registrytest"
	"github.com/bot-core/delivery/test/sigstoretest"
)

// platformDigests lists the platform manifests of an index in srv.
func platformDigests(t *testing.T, srv *registrytest.Server, repo, index string) []string {
	t.Helper()
	d, err := name.NewDigest(repo + "@" + index)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(d, remote.WithAuth(srv.Auth()))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range im.Manifests {
		out = append(out, m.Digest.String())
	}
	return out
}

// TestVerifyRequire: --require checks each attestation on every platform
// manifest of the index, and binds the provenance to the release asked: a
// missing provenance is refused, and so is one recording another release,
// as its version input or as its tag. Key signatures, so -short runs it.
func TestVerifyRequire(t *testing.T) {
	srv := registrytest.NewBasic(t)
	kp := sigstoretest.NewKeyPair(t, "")
	env := pullEnv(t, srv)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sbom := write("sbom.json", `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"rust-core-engine"}`)
	vuln := write("vuln.json", `{"scanner":{"uri":"pkg:github/aquasecurity/trivy@0.74.0","version":"0.74.0","result":{"SchemaVersion":2}},`+
		`"metadata":{"scanStartedOn":"2026-12-01T03:00:00Z","scanFinishedOn":"2026-12-01T03:00:01Z"}}`)
	prov := func(version, ref string) string {
		b, err := provenance.JSON(provenance.Build{Version: version, GitRef: ref, Services: []string{"rust-core-engine"},
			Platforms: []string{"linux/amd64", "linux/arm64"}, GitSHA: "0123456789abcdef0123456789abcdef01234567"})
		if err != nil {
			t.Fatal(err)
		}
		return write("provenance-"+version+"-"+strings.ReplaceAll(ref, "/", "-")+".json", string(b))
	}
	repo := srv.Host + "/bot/rust-core-engine"
	attest := func(digest, typ, predicate string) {
		t.Helper()
		if r := botcore(t, env, "", "attest", "--key", kp.PrivateFile, "--tlog-upload=false", "--type", typ, "--predicate", predicate, "rust-core-engine@"+digest); r.code != 0 {
			t.Fatal(r)
		}
	}
	release := func(version string) (string, []string) {
		d := seedRelease(t, srv, "rust-core-engine", version)
		if r := botcore(t, env, "", "sign", "--key", kp.PrivateFile, "--tlog-upload=false", "--recursive", "rust-core-engine@"+d); r.code != 0 {
			t.Fatal(r)
		}
		plats := platformDigests(t, srv, repo, d)
		for _, p := range plats {
			attest(p, "spdxjson", sbom)
			attest(p, "vuln", vuln)
		}
		return d, plats
	}
	policy := []string{"--key", kp.PublicFile, "--insecure-ignore-tlog"}
	verify := func(args ...string) result {
		return botcore(t, env, "", append(append([]string{"verify"}, policy...), args...)...)
	}

	_, plats := release("v1.2.0")
	r := verify("--require", "sbom,provenance,vuln", "rust-core-engine:v1.2.0")
	wantError(t, r, repo+"@"+plats[0]+" has valid attestations, but none of type slsaprovenance1 (https://slsa.dev/provenance/v1; found ",
		"attest it with `botcore attest --type slsaprovenance1`")

	for _, p := range plats {
		attest(p, "slsaprovenance1", prov("v1.2.0", "refs/tags/v1.2.0"))
	}
	r = verify("--require", "sbom,provenance,vuln", "rust-core-engine:v1.2.0")
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, p := range plats {
		for _, uri := range []string{"https://spdx.dev/Document", provenance.PredicateType, "https://cosign.sigstore.dev/attestation/vuln/v1"} {
			if !strings.Contains(r.stdout, "attestation "+uri+" of "+p+"  1 signature by key "+kp.PublicFile) {
				t.Errorf("no %s of %s in:\n%s", uri, p, r.stdout)
			}
		}
		if !strings.Contains(r.stderr, "the provenance of "+p+" records release v1.2.0") {
			t.Errorf("the provenance's release of %s was not reported:\n%s", p, r.stderr)
		}
	}
	// By digest nothing names a release unless asked; asked, the
	// provenance must name it.
	if r := verify("--require", "provenance", "rust-core-engine@"+plats[0]); r.code != 0 {
		t.Errorf("by digest: %s", r)
	}
	r = verify("--require", "provenance", "--release", "1.2.0", "rust-core-engine@"+plats[0])
	if r.code != 0 || !strings.Contains(r.stderr, "the provenance of "+plats[0]+" records release 1.2.0") {
		t.Errorf("by digest with --release: %s", r)
	}

	// A release whose label says v1.3.0 but whose provenance was built from
	// the v1.2.0 tag (an older build's provenance attached to a new image).
	_, plats3 := release("v1.3.0")
	for _, p := range plats3 {
		attest(p, "slsaprovenance1", prov("v1.3.0", "refs/tags/v1.2.0"))
	}
	r = verify("--require", "provenance", "rust-core-engine:v1.3.0")
	wantError(t, r, "says it was built as release v1.2.0 (git ref refs/tags/v1.2.0), not v1.3.0", "release.json records for v1.3.0")
	// A manual run (a branch ref) is bound by its version input.
	_, plats4 := release("v1.4.0")
	for _, p := range plats4 {
		attest(p, "slsaprovenance1", prov("v1.3.0", "refs/heads/main"))
	}
	r = verify("--require", "provenance", "rust-core-engine:v1.4.0")
	wantError(t, r, "the provenance of "+repo+"@"+plats4[0]+" says it was built as release v1.3.0 (version input), not v1.4.0")

	// Without --require the existing checks are unchanged.
	if r := verify("rust-core-engine:v1.3.0"); r.code != 0 || !strings.Contains(r.stdout, "release  v1.3.0") {
		t.Errorf("plain verify: %s", r)
	}
	if r := verify("--attestation-type", "vuln", "rust-core-engine@"+plats3[0]); r.code != 0 {
		t.Errorf("--attestation-type: %s", r)
	}

	r = verify("--require", "sbom,attestation-of-sorts", "rust-core-engine:v1.3.0")
	if r.code != 2 || !strings.Contains(r.stderr, `--require: "attestation-of-sorts" is no attestation kind: give sbom, provenance, vuln or a cosign predicate type such as spdxjson`) {
		t.Errorf("unknown kind: %s", r)
	}
}
