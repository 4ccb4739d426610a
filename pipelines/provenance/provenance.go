// Package provenance is the SLSA v1 provenance build-all attests for every
// platform manifest it publishes, and the check a verifier makes of it: which
// release the provenance says was built.
//
// The predicate is in-toto's own SLSA v1 type (github.com/in-toto/attestation,
// generated from the specification's protobuf), which brings only protobuf:
// light enough for the Dagger module, which compiles this module in the
// engine.
package provenance

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	ita "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bot-core/delivery/pipelines/release"
)

const (
	// PredicateType is the in-toto predicate type of SLSA provenance v1;
	// cosign's short name for it is CosignType.
	PredicateType = "https://slsa.dev/provenance/v1"
	CosignType    = "slsaprovenance1"
	// BuildType names build-all's way of building: the meaning of
	// externalParameters and resolvedDependencies below. A change to either
	// that a verifier must know of gets a new version.
	BuildType = "https://github.com/bot-core/delivery/build-all/v1"
	// BuilderID is the builder that vouches for the provenance: build-all,
	// the Dagger module in ci/ of this repository.
	BuilderID = "https://github.com/bot-core/delivery/ci/build-all"
)

// Build is what one build-all run knows of how an image came to be.
type Build struct {
	// Inputs of the run, as the caller gave them (externalParameters).
	Version         string
	Services        []string
	Platforms       []string
	Registry        string
	GitRef          string
	GitSHA          string
	SourceURL       string
	SourceDateEpoch int64
	Severities      []string
	IgnoreUnfixed   bool
	// PipIndexes are the pip indexes and find-links pages the Python
	// services installed from, as given (pipIndexes; left out for PyPI).
	PipIndexes []string
	// NpmRegistry is the npm registry the Next.js services installed from
	// (npmRegistry; left out for registry.npmjs.org).
	NpmRegistry string
	// CargoRegistry is the crates.io mirror the Rust services fetched
	// crates from (cargoRegistry; left out for crates.io).
	CargoRegistry string
	// BaseImages are the images the builders started from, digest-qualified.
	BaseImages []BaseImage
	// Tool is the botcore binary that scanned, SBOM'd and attested; nil
	// leaves it out.
	Tool *release.Tool
	// BuilderVersion maps builder components to their versions (e.g. the
	// Dagger engine's); optional.
	BuilderVersion map[string]string
	InvocationID   string
	StartedOn      time.Time
	FinishedOn     time.Time
}

// BaseImage is one image a builder ran From.
type BaseImage struct {
	// Name is the reference as configured, e.g. rust:1-slim-trixie.
	Name string
	// Ref is what the engine resolved it to: REPOSITORY@sha256:... (or
	// REPOSITORY:TAG@sha256:...), as Dagger's Container.imageRef gives it.
	Ref string
}

// digest splits the sha256 digest off a digest-qualified reference.
func (b BaseImage) digest() (string, error) {
	_, d, ok := strings.Cut(b.Ref, "@sha256:")
	if !ok || !isHex(d, 32) {
		return "", fmt.Errorf("base image %s resolved to %q, which names no sha256 digest", b.Name, b.Ref)
	}
	return d, nil
}

// Predicate is the SLSA v1 provenance of b.
func Predicate(b Build) (*slsa.Provenance, error) {
	fields := map[string]any{
		"version":         b.Version,
		"services":        list(b.Services),
		"platforms":       list(b.Platforms),
		"registry":        b.Registry,
		"gitRef":          b.GitRef,
		"gitSha":          b.GitSHA,
		"sourceUrl":       b.SourceURL,
		"sourceDateEpoch": b.SourceDateEpoch,
		"severity":        list(b.Severities),
		"ignoreUnfixed":   b.IgnoreUnfixed,
	}
	if len(b.PipIndexes) > 0 {
		fields["pipIndexes"] = list(b.PipIndexes)
	}
	if b.NpmRegistry != "" {
		fields["npmRegistry"] = b.NpmRegistry
	}
	if b.CargoRegistry != "" {
		fields["cargoRegistry"] = b.CargoRegistry
	}
	params, err := structpb.NewStruct(fields)
	if err != nil {
		return nil, err
	}
	var deps []*ita.ResourceDescriptor
	if src := source(b); src != nil {
		deps = append(deps, src)
	}
	for _, img := range b.BaseImages {
		d, err := img.digest()
		if err != nil {
			return nil, err
		}
		deps = append(deps, &ita.ResourceDescriptor{Name: img.Name, Uri: "oci://" + img.Ref, Digest: map[string]string{"sha256": d}})
	}
	if b.Tool != nil {
		dep, err := toolDependency(*b.Tool)
		if err != nil {
			return nil, err
		}
		deps = append(deps, dep)
	}
	p := &slsa.Provenance{
		BuildDefinition: &slsa.BuildDefinition{
			BuildType:            BuildType,
			ExternalParameters:   params,
			ResolvedDependencies: deps,
		},
		RunDetails: &slsa.RunDetails{
			Builder: &slsa.Builder{Id: BuilderID, Version: b.BuilderVersion},
			Metadata: &slsa.BuildMetadata{
				InvocationId: b.InvocationID,
				StartedOn:    stamp(b.StartedOn),
				FinishedOn:   stamp(b.FinishedOn),
			},
		},
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("the provenance is not valid SLSA v1: %w", err)
	}
	return p, nil
}

// ToolName names the botcore binary among the resolved dependencies.
const ToolName = "botcore"

// toolDependency is the botcore binary as a resolved dependency: its sha256,
// with how it was built (source, version, commit, Go, linked libraries) as
// annotations.
func toolDependency(t release.Tool) (*ita.ResourceDescriptor, error) {
	if !isHex(t.SHA256, 32) {
		return nil, fmt.Errorf("the botcore tool's sha256 %q is not a sha256", t.SHA256)
	}
	ann := map[string]any{"source": t.Source, "version": t.Version, "go": t.Go, "platform": t.Platform}
	if t.Revision != "" {
		ann["revision"] = t.Revision
		ann["modified"] = t.Modified
	}
	for name, v := range t.Libraries {
		ann[name] = v
	}
	annotations, err := structpb.NewStruct(ann)
	if err != nil {
		return nil, err
	}
	return &ita.ResourceDescriptor{Name: ToolName, Digest: map[string]string{"sha256": t.SHA256}, Annotations: annotations}, nil
}

// JSON is the predicate as cosign attest --type slsaprovenance1 takes it:
// protobuf's JSON mapping, which is the specification's field names.
func JSON(b Build) ([]byte, error) {
	p, err := Predicate(b)
	if err != nil {
		return nil, err
	}
	return protojson.MarshalOptions{Multiline: true}.Marshal(p)
}

// source is the git checkout the release was built from, the way SLSA's
// build types name one: git+URL@REF, with the commit as its digest.
func source(b Build) *ita.ResourceDescriptor {
	if b.SourceURL == "" && b.GitSHA == "" {
		return nil
	}
	rd := &ita.ResourceDescriptor{Name: "source"}
	if b.SourceURL != "" {
		rd.Uri = "git+" + b.SourceURL
		if b.GitRef != "" {
			rd.Uri += "@" + b.GitRef
		}
	}
	// gitCommit is a SHA-1 by definition; a SHA-256 repository's commit
	// stays in externalParameters.gitSha only.
	if isHex(b.GitSHA, 20) {
		rd.Digest = map[string]string{"gitCommit": strings.ToLower(b.GitSHA)}
	}
	return rd
}

func list(xs []string) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func stamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func isHex(s string, bytes int) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == bytes
}

// Parse reads a provenance predicate, or an in-toto statement holding one
// (what a verified attestation's payload is).
func Parse(data []byte) (*slsa.Provenance, error) {
	opts := protojson.UnmarshalOptions{DiscardUnknown: true}
	var st ita.Statement
	if err := opts.Unmarshal(data, &st); err == nil && st.GetPredicateType() != "" {
		if st.GetPredicateType() != PredicateType {
			return nil, fmt.Errorf("the statement's predicate is a %s, not SLSA provenance v1", st.GetPredicateType())
		}
		if data, err = protojson.Marshal(st.GetPredicate()); err != nil {
			return nil, err
		}
	}
	var p slsa.Provenance
	if err := opts.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("not an SLSA provenance v1 predicate: %w", err)
	}
	return &p, nil
}

// ErrNoVersion: the provenance names no release, neither as the version
// input nor as a tag ref.
var ErrNoVersion = errors.New("names no release version")

// VersionMismatchError says a provenance records the build of another
// release than the one asked for.
type VersionMismatchError struct {
	Subject string // what the provenance is about, e.g. REPO@sha256:...
	Want    string
	Got     string // "" with ErrNoVersion
	From    string // where Got was read: "version input" or the git ref
}

func (e *VersionMismatchError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf("the provenance of %s %s, so nothing says it was built as release %s", e.Subject, ErrNoVersion, e.Want)
	}
	return fmt.Sprintf("the provenance of %s says it was built as release %s (%s), not %s", e.Subject, e.Got, e.From, e.Want)
}

func (e *VersionMismatchError) Is(target error) bool { return target == ErrNoVersion && e.Got == "" }

// CheckVersion requires p to record the build of release want ("v1.2.3" and
// "1.2.3" are the same): its version input and, for a tag-push build, the
// tag its git ref names. A manual run (a branch ref) is bound by its version
// input alone.
func CheckVersion(p *slsa.Provenance, subject, want string) error {
	params := p.GetBuildDefinition().GetExternalParameters().GetFields()
	claims := [][2]string{}
	if v := params["version"].GetStringValue(); v != "" {
		claims = append(claims, [2]string{v, "version input"})
	}
	if tag, ok := strings.CutPrefix(params["gitRef"].GetStringValue(), "refs/tags/"); ok {
		claims = append(claims, [2]string{tag, "git ref refs/tags/" + tag})
	}
	if len(claims) == 0 {
		return &VersionMismatchError{Subject: subject, Want: want}
	}
	for _, c := range claims {
		if strings.TrimPrefix(c[0], "v") != strings.TrimPrefix(want, "v") {
			return &VersionMismatchError{Subject: subject, Want: want, Got: c[0], From: c[1]}
		}
	}
	return nil
}
