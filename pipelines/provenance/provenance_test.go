package provenance

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bot-core/delivery/pipelines/release"
)

const (
	sha      = "0123456789abcdef0123456789abcdef01234567"
	rustHex  = "1111111111111111111111111111111111111111111111111111111111111111"
	distrHex = "2222222222222222222222222222222222222222222222222222222222222222"
)

func sample() Build {
	return Build{
		Version: "v1.2.3", Services: []string{"rust-core-engine", "python-ai-service"}, Platforms: []string{"linux/amd64", "linux/arm64"},
		Registry: "ghcr.io/acme/bot-core", GitRef: "refs/tags/v1.2.3", GitSHA: sha, SourceURL: "https://github.com/acme/bot-core",
		SourceDateEpoch: 1700000000, Severities: []string{"HIGH", "CRITICAL"}, IgnoreUnfixed: true,
		BaseImages: []BaseImage{
			{Name: "rust:1-slim-trixie", Ref: "docker.io/library/rust:1-slim-trixie@sha256:" + rustHex},
			{Name: "gcr.io/distroless/cc-debian13:nonroot", Ref: "gcr.io/distroless/cc-debian13@sha256:" + distrHex},
		},
		BuilderVersion: map[string]string{"dagger": "v0.19.0"},
		InvocationID:   "urn:uuid:5b1d6c1e-0000-4000-8000-000000000001",
		StartedOn:      time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC),
		FinishedOn:     time.Date(2026, 12, 1, 3, 4, 5, 0, time.UTC),
	}
}

// The JSON is read the way a verifier (cosign, slsa-verifier, a policy)
// reads it, field by field under the specification's names.
func TestJSONFieldByField(t *testing.T) {
	b, err := JSON(sample())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		BuildDefinition struct {
			BuildType            string         `json:"buildType"`
			ExternalParameters   map[string]any `json:"externalParameters"`
			ResolvedDependencies []struct {
				Name   string            `json:"name"`
				URI    string            `json:"uri"`
				Digest map[string]string `json:"digest"`
			} `json:"resolvedDependencies"`
		} `json:"buildDefinition"`
		RunDetails struct {
			Builder struct {
				ID      string            `json:"id"`
				Version map[string]string `json:"version"`
			} `json:"builder"`
			Metadata struct {
				InvocationID string `json:"invocationId"`
				StartedOn    string `json:"startedOn"`
				FinishedOn   string `json:"finishedOn"`
			} `json:"metadata"`
		} `json:"runDetails"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	bd, rd := got.BuildDefinition, got.RunDetails
	if bd.BuildType != BuildType {
		t.Errorf("buildType = %q", bd.BuildType)
	}
	want := map[string]any{
		"version": "v1.2.3", "services": []any{"rust-core-engine", "python-ai-service"}, "platforms": []any{"linux/amd64", "linux/arm64"},
		"registry": "ghcr.io/acme/bot-core", "gitRef": "refs/tags/v1.2.3", "gitSha": sha, "sourceUrl": "https://github.com/acme/bot-core",
		"sourceDateEpoch": float64(1700000000), "severity": []any{"HIGH", "CRITICAL"}, "ignoreUnfixed": true,
	}
	if len(bd.ExternalParameters) != len(want) {
		t.Errorf("externalParameters = %v, want exactly %v", bd.ExternalParameters, want)
	}
	for k, v := range want {
		if g, _ := json.Marshal(bd.ExternalParameters[k]); string(g) != mustJSON(t, v) {
			t.Errorf("externalParameters.%s = %s, want %s", k, g, mustJSON(t, v))
		}
	}
	deps := bd.ResolvedDependencies
	if len(deps) != 3 {
		t.Fatalf("resolvedDependencies = %+v, want the source and two base images", deps)
	}
	if deps[0].Name != "source" || deps[0].URI != "git+https://github.com/acme/bot-core@refs/tags/v1.2.3" || deps[0].Digest["gitCommit"] != sha {
		t.Errorf("source = %+v", deps[0])
	}
	if deps[1].Name != "rust:1-slim-trixie" || deps[1].URI != "oci://docker.io/library/rust:1-slim-trixie@sha256:"+rustHex || deps[1].Digest["sha256"] != rustHex {
		t.Errorf("base image = %+v", deps[1])
	}
	if deps[2].Name != "gcr.io/distroless/cc-debian13:nonroot" || deps[2].Digest["sha256"] != distrHex {
		t.Errorf("base image = %+v", deps[2])
	}
	if rd.Builder.ID != BuilderID || rd.Builder.Version["dagger"] != "v0.19.0" {
		t.Errorf("builder = %+v", rd.Builder)
	}
	m := rd.Metadata
	if m.InvocationID != "urn:uuid:5b1d6c1e-0000-4000-8000-000000000001" || m.StartedOn != "2026-12-01T03:00:00Z" || m.FinishedOn != "2026-12-01T03:04:05Z" {
		t.Errorf("metadata = %+v", m)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A manual run names no source unless given one, and an unresolved base
// image (no digest) is refused rather than attested as a floating tag.
func TestSourceAndBaseImages(t *testing.T) {
	b := sample()
	b.SourceURL, b.GitSHA = "", ""
	p, err := Predicate(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range p.GetBuildDefinition().GetResolvedDependencies() {
		if d.GetName() == "source" {
			t.Errorf("a source without URL or commit: %v", d)
		}
	}
	b = sample()
	b.GitSHA = strings.Repeat("ab", 32) // a SHA-256 repository
	p, err = Predicate(b)
	if err != nil {
		t.Fatal(err)
	}
	if src := p.GetBuildDefinition().GetResolvedDependencies()[0]; src.GetName() != "source" || len(src.GetDigest()) != 0 {
		t.Errorf("a SHA-256 commit is no gitCommit: %v", src)
	}
	b = sample()
	b.BaseImages = append(b.BaseImages, BaseImage{Name: "node:20", Ref: "docker.io/library/node:20"})
	if _, err := Predicate(b); err == nil || !strings.Contains(err.Error(), "base image node:20 resolved to \"docker.io/library/node:20\", which names no sha256 digest") {
		t.Errorf("unresolved base image: %v", err)
	}
}

// Parse reads back both the predicate and the statement a verified
// attestation carries.
func TestParse(t *testing.T) {
	pred, err := JSON(sample())
	if err != nil {
		t.Fatal(err)
	}
	stmt := `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"` + PredicateType + `","subject":[{"name":"r","digest":{"sha256":"` + rustHex + `"}}],"predicate":` + string(pred) + `}`
	for what, data := range map[string]string{"predicate": string(pred), "statement": stmt} {
		p, err := Parse([]byte(data))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := p.GetBuildDefinition().GetExternalParameters().GetFields()["gitSha"].GetStringValue(); got != sha {
			t.Errorf("%s: gitSha = %q", what, got)
		}
	}
	other := `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","predicate":{}}`
	if _, err := Parse([]byte(other)); err == nil || !strings.Contains(err.Error(), "not SLSA provenance v1") {
		t.Errorf("an SBOM statement: %v", err)
	}
}

func TestCheckVersion(t *testing.T) {
	check := func(version, ref, want string) error {
		b := sample()
		b.Version, b.GitRef = version, ref
		p, err := Predicate(b)
		if err != nil {
			t.Fatal(err)
		}
		return CheckVersion(p, "r@sha256:"+rustHex, want)
	}
	for _, ok := range [][3]string{
		{"v1.2.3", "refs/tags/v1.2.3", "v1.2.3"}, // tag push
		{"v1.2.3", "refs/tags/v1.2.3", "1.2.3"},
		{"v1.2.3", "refs/heads/main", "v1.2.3"}, // manual run on a branch
		{"", "refs/tags/v1.2.3", "v1.2.3"},
	} {
		if err := check(ok[0], ok[1], ok[2]); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	err := check("v1.1.0", "refs/heads/main", "v1.2.3")
	if err == nil || err.Error() != "the provenance of r@sha256:"+rustHex+" says it was built as release v1.1.0 (version input), not v1.2.3" {
		t.Errorf("another version: %v", err)
	}
	err = check("v1.2.3", "refs/tags/v1.1.0", "v1.2.3")
	if err == nil || !strings.Contains(err.Error(), "says it was built as release v1.1.0 (git ref refs/tags/v1.1.0), not v1.2.3") {
		t.Errorf("a tag naming another version: %v", err)
	}
	err = check("", "refs/heads/main", "v1.2.3")
	if !errors.Is(err, ErrNoVersion) || !strings.Contains(err.Error(), "names no release version, so nothing says it was built as release v1.2.3") {
		t.Errorf("no version: %v", err)
	}
}

// The botcore binary that produced the scan, SBOM and attestations is a
// resolved dependency by its sha256, with how it was built alongside.
func TestToolDependency(t *testing.T) {
	b := sample()
	b.Tool = &release.Tool{Source: "given", SHA256: rustHex, Version: "(devel)", Revision: sha, Go: "go1.26.0", Platform: "linux/amd64",
		Libraries: map[string]string{"trivy": "v0.67.2", "cosign": "v2.6.1"}}
	js, err := JSON(b)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		BuildDefinition struct {
			ResolvedDependencies []struct {
				Name        string            `json:"name"`
				Digest      map[string]string `json:"digest"`
				Annotations map[string]any    `json:"annotations"`
			} `json:"resolvedDependencies"`
		} `json:"buildDefinition"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	deps := doc.BuildDefinition.ResolvedDependencies
	tool := deps[len(deps)-1]
	want := map[string]any{"source": "given", "version": "(devel)", "revision": sha, "modified": false, "go": "go1.26.0",
		"platform": "linux/amd64", "trivy": "v0.67.2", "cosign": "v2.6.1"}
	if tool.Name != ToolName || tool.Digest["sha256"] != rustHex || mustJSON(t, tool.Annotations) != mustJSON(t, want) {
		t.Errorf("tool dependency %+v, want sha256 %s and annotations %v", tool, rustHex, want)
	}

	b.Tool.SHA256 = "abc"
	if _, err := Predicate(b); err == nil || !strings.Contains(err.Error(), `the botcore tool's sha256 "abc" is not a sha256`) {
		t.Errorf("a tool without sha256: %v", err)
	}
}

// The package indexes a build installed from are a parameter of the build
// only when they are not the public ones.
func TestPackageIndexParameters(t *testing.T) {
	b := sample()
	b.PipIndexes = []string{"https://nexus.example.com/repository/pypi/simple", "https://wheels.internal/"}
	b.NpmRegistry = "https://nexus.example.com/repository/npm/"
	b.CargoRegistry = "sparse+https://nexus.example.com/repository/cargo/"
	p, err := Predicate(b)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(p.GetBuildDefinition().GetExternalParameters().GetFields()["pipIndexes"])
	if string(got) != `["https://nexus.example.com/repository/pypi/simple","https://wheels.internal/"]` {
		t.Errorf("pipIndexes = %s", got)
	}
	if got := p.GetBuildDefinition().GetExternalParameters().GetFields()["npmRegistry"].GetStringValue(); got != b.NpmRegistry {
		t.Errorf("npmRegistry = %q", got)
	}
	if got := p.GetBuildDefinition().GetExternalParameters().GetFields()["cargoRegistry"].GetStringValue(); got != b.CargoRegistry {
		t.Errorf("cargoRegistry = %q", got)
	}
	p, err = Predicate(sample())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pipIndexes", "npmRegistry", "cargoRegistry"} {
		if _, ok := p.GetBuildDefinition().GetExternalParameters().GetFields()[k]; ok {
			t.Errorf("%s recorded for a build that used the public index", k)
		}
	}
}
