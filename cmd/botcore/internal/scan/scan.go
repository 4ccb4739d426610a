// Package scan runs Trivy's vulnerability scanner, as a library, on one
// image opened by imagesrc: OS packages (dpkg, apk, rpm) and the language
// packages installed in the image (node_modules, Python dist-info, Go and
// Rust binaries, ...), the way `trivy image --scanners vuln` does.
//
// It wires Trivy's scan service itself instead of going through
// pkg/commands/artifact: that runner always looks for the DB under
// <cache>/db, checks for new Trivy versions over the network and loads WASM
// modules, while here a DB directory must be usable as it is and strictly
// offline.
package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	tdb "github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	dbTypes "github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy/pkg/cache"
	"github.com/aquasecurity/trivy/pkg/db"
	"github.com/aquasecurity/trivy/pkg/fanal/analyzer"
	"github.com/aquasecurity/trivy/pkg/fanal/applier"
	"github.com/aquasecurity/trivy/pkg/fanal/artifact"
	artimage "github.com/aquasecurity/trivy/pkg/fanal/artifact/image"
	fimage "github.com/aquasecurity/trivy/pkg/fanal/image"
	ftypes "github.com/aquasecurity/trivy/pkg/fanal/types"
	"github.com/aquasecurity/trivy/pkg/javadb"
	tlog "github.com/aquasecurity/trivy/pkg/log"
	"github.com/aquasecurity/trivy/pkg/report"
	"github.com/aquasecurity/trivy/pkg/report/predicate"
	"github.com/aquasecurity/trivy/pkg/result"
	tscan "github.com/aquasecurity/trivy/pkg/scan"
	"github.com/aquasecurity/trivy/pkg/scan/langpkg"
	"github.com/aquasecurity/trivy/pkg/scan/local"
	"github.com/aquasecurity/trivy/pkg/scan/ospkg"
	"github.com/aquasecurity/trivy/pkg/types"
	"github.com/aquasecurity/trivy/pkg/vulnerability"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/owenrumney/go-sarif/v2/sarif"

	"github.com/bot-core/delivery/cmd/botcore/internal/buildinfo"
	"github.com/bot-core/delivery/cmd/botcore/internal/imagesrc"
)

// Severities are Trivy's severity names, lowest first: what Trivy's filter
// and reports take. (Callers validate user input with pipelines/vuln, whose
// list a test holds equal to this one.)
var Severities = dbTypes.SeverityNames

// ErrDBDownload: the vulnerability DB could not be downloaded into the cache.
var ErrDBDownload = errors.New("cannot download the vulnerability DB")

// DB says which vulnerability database to use; exactly one of Dir and
// CacheDir is set.
type DB struct {
	// Dir holds trivy.db and metadata.json (the layout of <cache>/db). It is
	// used as it is: never downloaded, never updated, no network.
	Dir string
	// CacheDir is a Trivy cache directory: the DB is kept in CacheDir/db and
	// downloaded from Repositories when missing or due for an update, and
	// the Java DB is fetched into CacheDir/java-db if the image has JARs.
	CacheDir string
	// Repositories are the OCI repositories of the DB, tried in order
	// (default: Trivy's, mirror.gcr.io then ghcr.io).
	Repositories []name.Reference
}

// Options configure Run.
type Options struct {
	DB DB
	// IgnoreUnfixed drops findings that have no fixed version.
	IgnoreUnfixed bool
	// IgnoreFile is a .trivyignore (or .trivyignore.yaml); "" for none.
	IgnoreFile string
	// Progress prints one progress line.
	Progress func(format string, args ...any)
	// Log receives Trivy's own warnings and errors.
	Log io.Writer
	// LayerCache is a directory for Trivy's analysis of each layer (its
	// fanal cache, keyed by the layer's diff ID and the analyzers' versions);
	// "" keeps it in memory for this scan. A scan finding a layer there does
	// not read that layer again.
	LayerCache string
}

// Layers says how much of an image's analysis a scan had to
// do: Analyzed of Total layers were read, the rest came from the layer cache.
type Layers struct {
	Total    int `json:"total"`
	Analyzed int `json:"analyzed"`
}

// Finding is one vulnerability of one installed package.
type Finding struct {
	// Target is what Trivy found the package in, e.g. "app (debian 13.1)"
	// or "Node.js".
	Target string `json:"target"`
	// Type is the package type: debian, node-pkg, python-pkg, rustbinary, ...
	Type             string `json:"type"`
	Package          string `json:"package"`
	InstalledVersion string `json:"installed_version"`
	// PkgPath is the file the package was found in, for language packages.
	PkgPath         string `json:"path,omitempty"`
	VulnerabilityID string `json:"vulnerability_id"`
	Severity        string `json:"severity"`
	// FixedVersion is "" when there is no fix.
	FixedVersion string `json:"fixed_version,omitempty"`
	Status       string `json:"status"`
	Title        string `json:"title,omitempty"`
}

// Fix is the fixed version, or "no fix".
func (f Finding) Fix() string {
	if f.FixedVersion == "" {
		return "no fix"
	}
	return f.FixedVersion
}

// Result is the outcome of one scan.
type Result struct {
	// Report is Trivy's report after the ignore file and --ignore-unfixed
	// (every severity), as the JSON and SARIF writers take it.
	Report types.Report
	// Findings are the vulnerabilities of Report, most severe first.
	Findings []Finding
	// DB describes the database used.
	DBDir       string
	DBUpdatedAt time.Time
	Layers      Layers
}

// Counts returns the number of findings per severity name.
func (r *Result) Counts() map[string]int {
	c := map[string]int{}
	for _, s := range Severities {
		c[s] = 0
	}
	for _, f := range r.Findings {
		c[f.Severity]++
	}
	return c
}

// Matching returns the findings whose severity is one of severities.
func (r *Result) Matching(severities []string) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if slices.Contains(severities, f.Severity) {
			out = append(out, f)
		}
	}
	return out
}

// mu serialises scans: trivy-db keeps one process-wide database handle.
var mu sync.Mutex

// quietTrivy routes Trivy's log (slog's default logger, which buffers
// everything until Trivy's CLI sets one up) to w, warnings only, until the
// returned function restores it.
func quietTrivy(w io.Writer) func() {
	if w == nil {
		w = io.Discard
	}
	prev := slog.Default()
	slog.SetDefault(tlog.New(tlog.NewHandler(w, &tlog.Options{Level: tlog.LevelWarn})))
	return func() { slog.SetDefault(prev) }
}

// countingCache counts the layers Trivy analyzes: it stores one blob per
// layer it had to read, and none for a layer the cache already holds.
type countingCache struct {
	cache.Cache
	analyzed *int
}

func (c countingCache) PutBlob(ctx context.Context, id string, info ftypes.BlobInfo) error {
	*c.analyzed++
	return c.Cache.PutBlob(ctx, id, info)
}

// artifactOf sets up Trivy's image artifact for img with the analyzers
// `trivy image --scanners vuln` runs, over the layer cache of opts.
func artifactOf(img *imagesrc.Image, opts Options, analyzed *int) (artifact.Artifact, cache.Cache, func(), error) {
	offline := opts.DB.Dir != ""
	copts := cache.Options{Backend: string(cache.TypeMemory)}
	if opts.LayerCache != "" {
		copts = cache.Options{Backend: string(cache.TypeFS), CacheDir: opts.LayerCache}
	}
	c, cleanup, err := cache.New(copts)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cannot open the layer cache %s: %w", opts.LayerCache, err)
	}
	counted := countingCache{Cache: c, analyzed: analyzed}
	art, err := artimage.NewArtifact(trivyImage{Image: img.Image, img: img}, counted, artifact.Option{
		DisabledAnalyzers: disabledAnalyzers(offline),
		Parallel:          5, // trivy's default
		NoProgress:        true,
		Offline:           offline,
		DetectionPriority: ftypes.PriorityPrecise,
	})
	if err != nil {
		cleanup()
		return nil, nil, nil, fmt.Errorf("cannot set up the scan of %s: %w", img, err)
	}
	return art, counted, cleanup, nil
}

func layerCount(img *imagesrc.Image) int {
	if cf, err := img.ConfigFile(); err == nil {
		return len(cf.RootFS.DiffIDs)
	}
	return 0
}

// Run scans img.
func Run(ctx context.Context, img *imagesrc.Image, opts Options) (*Result, error) {
	mu.Lock()
	defer mu.Unlock()
	progress := opts.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	defer quietTrivy(opts.Log)()

	dbDir, meta, err := openDB(ctx, opts.DB, progress)
	if err != nil {
		return nil, err
	}
	defer tdb.Close()

	layers := Layers{Total: layerCount(img)}
	art, c, cleanup, err := artifactOf(img, opts, &layers.Analyzed)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	svc := local.NewService(applier.NewApplier(c), ospkg.NewScanner(), langpkg.NewScanner(), vulnerability.NewClient(tdb.Config{}))
	progress("scanning %s with trivy %s", img, TrivyVersion())
	rep, err := tscan.NewService(svc, art).ScanArtifact(ctx, types.ScanOptions{
		PkgTypes:            types.PkgTypes,
		PkgRelationships:    ftypes.Relationships,
		Scanners:            types.Scanners{types.VulnerabilityScanner, types.SBOMScanner},
		VulnSeveritySources: []dbTypes.SourceID{"auto"},
	})
	if err != nil {
		return nil, fmt.Errorf("trivy could not scan %s: %w", img, err)
	}
	rep.Trivy.Version = TrivyVersion()
	if opts.LayerCache != "" {
		progress("analyzed %d of %d layers; the others came from the layer cache %s", layers.Analyzed, layers.Total, opts.LayerCache)
	}

	var ignoreStatuses []dbTypes.Status
	if opts.IgnoreUnfixed {
		// What trivy's --ignore-unfixed means: every status but "fixed".
		for _, s := range dbTypes.Statuses {
			if st := dbTypes.NewStatus(s); st != dbTypes.StatusFixed {
				ignoreStatuses = append(ignoreStatuses, st)
			}
		}
	}
	var all []dbTypes.Severity
	for _, s := range Severities {
		sev, _ := dbTypes.NewSeverity(s)
		all = append(all, sev)
	}
	if err := result.Filter(ctx, rep, result.FilterOptions{
		Severities:     all,
		IgnoreStatuses: ignoreStatuses,
		IgnoreFile:     opts.IgnoreFile,
	}); err != nil {
		return nil, fmt.Errorf("cannot apply the ignore file %s: %w", opts.IgnoreFile, err)
	}

	res := &Result{Report: rep, DBDir: dbDir, DBUpdatedAt: meta.UpdatedAt, Layers: layers}
	for _, r := range rep.Results {
		for _, v := range r.Vulnerabilities {
			res.Findings = append(res.Findings, Finding{
				Target:           r.Target,
				Type:             string(r.Type),
				Package:          v.PkgName,
				InstalledVersion: v.InstalledVersion,
				PkgPath:          v.PkgPath,
				VulnerabilityID:  v.VulnerabilityID,
				Severity:         v.Severity,
				FixedVersion:     v.FixedVersion,
				Status:           status(v.Status),
				Title:            v.Title,
			})
		}
	}
	rank := func(s string) int { return slices.Index(Severities, s) }
	sort.SliceStable(res.Findings, func(i, j int) bool {
		a, b := res.Findings[i], res.Findings[j]
		if rank(a.Severity) != rank(b.Severity) {
			return rank(a.Severity) > rank(b.Severity)
		}
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		return a.VulnerabilityID < b.VulnerabilityID
	})
	return res, nil
}

// disabledAnalyzers is the set `trivy image --scanners vuln` disables: lock
// files (an image is judged by what is installed, not by what a manifest
// asks for), secrets, misconfigurations, licenses, and the analyzers that
// only feed Rekor or are experimental. Offline, JAR files are skipped too:
// identifying them needs the Java DB, which is downloaded on first use.
func disabledAnalyzers(offline bool) []analyzer.Type {
	out := slices.Clone(analyzer.TypeLockfiles)
	out = append(out, analyzer.TypeConfigFiles...)
	out = append(out,
		analyzer.TypeApkCommand,
		analyzer.TypeSecret,
		analyzer.TypeLicenseFile,
		analyzer.TypeHistoryDockerfile,
		analyzer.TypeExecutable,
		analyzer.TypeRpmArchive,
	)
	if offline {
		out = append(out, analyzer.TypeJar)
	}
	return out
}

// openDB opens the vulnerability DB (trivy-db's process-wide handle), first
// downloading it into the cache when that is the mode and it is needed.
func openDB(ctx context.Context, o DB, progress func(string, ...any)) (string, metadata.Metadata, error) {
	switch {
	case o.Dir != "" && o.CacheDir != "":
		return "", metadata.Metadata{}, errors.New("give either a DB directory or a cache directory, not both")
	case o.Dir != "":
		meta, err := checkDBDir(o.Dir)
		if err != nil {
			return "", meta, err
		}
		progress("using the vulnerability DB in %s (updated %s), offline", o.Dir, meta.UpdatedAt.UTC().Format(time.RFC3339))
		if !meta.NextUpdate.IsZero() && time.Now().After(meta.NextUpdate.Add(7*24*time.Hour)) {
			progress("warning: the vulnerability DB in %s is more than a week past its next update (%s): newer advisories are missing", o.Dir, meta.NextUpdate.UTC().Format(time.RFC3339))
		}
		if err := db.Init(o.Dir); err != nil {
			return "", meta, fmt.Errorf("cannot open the vulnerability DB %s: %w", tdb.Path(o.Dir), err)
		}
		return o.Dir, meta, nil
	case o.CacheDir != "":
		dir, err := refreshDB(ctx, o, progress)
		if err != nil {
			return "", metadata.Metadata{}, err
		}
		meta, err := checkDBDir(dir)
		if err != nil {
			return "", meta, err
		}
		progress("using the vulnerability DB in %s (updated %s)", dir, meta.UpdatedAt.UTC().Format(time.RFC3339))
		javadb.Init(o.CacheDir, javaRepositories(), false, true, ftypes.RegistryOptions{})
		if err := db.Init(dir); err != nil {
			return "", meta, fmt.Errorf("cannot open the vulnerability DB %s: %w", tdb.Path(dir), err)
		}
		return dir, meta, nil
	}
	return "", metadata.Metadata{}, errors.New("no vulnerability DB given: pass a DB directory or a cache directory")
}

// refreshDB downloads the DB into o.CacheDir/db when it is missing or due
// for an update, and returns that directory.
func refreshDB(ctx context.Context, o DB, progress func(string, ...any)) (string, error) {
	dir := db.Dir(o.CacheDir)
	client := db.NewClient(dir, true, db.WithDBRepository(o.repositories()))
	need, err := client.NeedsUpdate(ctx, TrivyVersion(), false)
	if err != nil {
		return "", fmt.Errorf("the vulnerability DB in %s is not usable (%v): delete that directory to download it again", dir, err)
	}
	if need {
		progress("downloading the vulnerability DB into %s from %s", dir, refList(o.repositories()))
		if err := client.Download(ctx, dir, ftypes.RegistryOptions{}); err != nil {
			return "", fmt.Errorf("%w (%s)", ErrDBDownload, oneLine(err))
		}
	}
	return dir, nil
}

// repositories are o's DB repositories, or Trivy's own when none are given.
func (o DB) repositories() []name.Reference {
	if len(o.Repositories) > 0 {
		return o.Repositories
	}
	var out []name.Reference
	for _, r := range []string{db.DefaultGCRRepository, db.DefaultGHCRRepository} {
		if ref, err := name.ParseReference(r); err == nil {
			out = append(out, ref)
		}
	}
	return out
}

func refList(refs []name.Reference) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}

// DBDir is where o keeps the DB it downloads.
func DBDir(o DB) string { return db.Dir(o.CacheDir) }

// FetchDB brings the DB in o.CacheDir up to date without scanning anything,
// so that every scan sharing that cache afterwards finds it fresh: a release
// of six images downloads it once instead of six times at once.
func FetchDB(ctx context.Context, o DB, progress func(string, ...any)) (metadata.Metadata, error) {
	if o.CacheDir == "" {
		return metadata.Metadata{}, errors.New("no cache directory to fetch the vulnerability DB into")
	}
	dir, err := refreshDB(ctx, o, progress)
	if err != nil {
		return metadata.Metadata{}, err
	}
	meta, err := checkDBDir(dir)
	if err == nil {
		progress("the vulnerability DB in %s is up to date (updated %s)", dir, meta.UpdatedAt.UTC().Format(time.RFC3339))
	}
	return meta, err
}

// CheckDB answers, in a second and without downloading, whether a scan with
// o can have its DB: the cache holds one that needs no update, or one of the
// repositories serves it. A release checks this before it builds anything.
func CheckDB(ctx context.Context, o DB, progress func(string, ...any)) error {
	if o.CacheDir == "" {
		return errors.New("no cache directory to check for the vulnerability DB")
	}
	dir := db.Dir(o.CacheDir)
	need, err := db.NewClient(dir, true).NeedsUpdate(ctx, TrivyVersion(), false)
	if err == nil && !need {
		progress("the vulnerability DB in %s needs no update", dir)
		return nil
	}
	var failed []string
	for _, ref := range o.repositories() {
		desc, err := remote.Head(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
		if err == nil {
			progress("the vulnerability DB is at %s (%s)", ref, desc.Digest)
			return nil
		}
		failed = append(failed, ref.String()+": "+oneLine(err))
	}
	return fmt.Errorf("%w (%s)", ErrDBDownload, strings.Join(failed, "; "))
}

// oneLine flattens trivy's multi-line error lists ("1 error occurred:\n\t*
// ...") so that the error stays one line.
func oneLine(err error) string {
	s := err.Error()
	for _, noise := range []string{"1 error occurred:", "errors occurred:"} {
		s = strings.ReplaceAll(s, noise, "")
	}
	s = strings.ReplaceAll(s, "\t* ", "")
	return strings.Join(strings.Fields(s), " ")
}

// checkDBDir checks dir holds a DB this Trivy can read, with the error a
// person can act on.
func checkDBDir(dir string) (metadata.Metadata, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return metadata.Metadata{}, fmt.Errorf("the vulnerability DB directory %s does not exist: give the directory holding trivy.db and metadata.json (trivy's <cache>/db)", dir)
	}
	if _, err := os.Stat(tdb.Path(dir)); err != nil {
		return metadata.Metadata{}, fmt.Errorf("%s has no trivy.db: give the directory holding trivy.db and metadata.json (the db directory of a Trivy cache)", dir)
	}
	meta, err := metadata.NewClient(dir).Get()
	if err != nil {
		return meta, fmt.Errorf("%s has no readable metadata.json (%v): copy it along with trivy.db", dir, err)
	}
	if meta.Version != tdb.SchemaVersion {
		return meta, fmt.Errorf("the vulnerability DB in %s has schema version %d but trivy %s reads version %d: get the DB from trivy-db:%d", dir, meta.Version, TrivyVersion(), tdb.SchemaVersion, tdb.SchemaVersion)
	}
	return meta, nil
}

func javaRepositories() []name.Reference {
	var out []name.Reference
	for _, r := range []string{javadb.DefaultGCRRepository, javadb.DefaultGHCRRepository} {
		if ref, err := name.ParseReference(r); err == nil {
			out = append(out, ref)
		}
	}
	return out
}

// DefaultCacheDir is trivy's default cache directory for the environment
// env describes ($XDG_CACHE_HOME/trivy, else ~/.cache/trivy).
func DefaultCacheDir(env func(string) string) string {
	if d := env("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "trivy")
	}
	if h := env("HOME"); h != "" {
		return filepath.Join(h, ".cache", "trivy")
	}
	return filepath.Join(os.TempDir(), "trivy")
}

// TrivyVersion is the version of the Trivy module built in.
func TrivyVersion() string {
	if v := buildinfo.Library(buildinfo.Libraries["trivy"]); v != "" {
		return strings.TrimPrefix(v, "v")
	}
	return "dev"
}

// WriteJSON writes Trivy's JSON report.
func WriteJSON(ctx context.Context, w io.Writer, rep types.Report) error {
	return report.JSONWriter{Output: w}.Write(ctx, rep)
}

// WriteCosignVuln writes the report as cosign's vulnerability predicate
// (https://cosign.sigstore.dev/attestation/vuln/v1) with Trivy's own
// cosign-vuln writer: the scanner's URI and version, and the report as its
// result.
func WriteCosignVuln(ctx context.Context, w io.Writer, rep types.Report) error {
	return predicate.NewVulnWriter(w, TrivyVersion()).Write(ctx, rep)
}

// WriteSARIF writes the report as SARIF 2.1.0 with Trivy's writer. A
// category, when given, becomes every run's automationDetails.id: GitHub
// code scanning keeps one analysis per category, so the reports of several
// images (or platforms) uploaded for one commit do not replace each other.
// Trivy's writer has no such setting, so its output is read back into
// go-sarif's types (the library it writes with) and written again.
func WriteSARIF(ctx context.Context, w io.Writer, rep types.Report, category string) error {
	if category == "" {
		return (&report.SarifWriter{Output: w, Version: TrivyVersion()}).Write(ctx, rep)
	}
	var buf bytes.Buffer
	if err := (&report.SarifWriter{Output: &buf, Version: TrivyVersion()}).Write(ctx, rep); err != nil {
		return err
	}
	doc, err := sarif.FromBytes(buf.Bytes())
	if err != nil {
		return fmt.Errorf("reading back trivy's SARIF report: %w", err)
	}
	for _, run := range doc.Runs {
		if run.AutomationDetails == nil {
			run.AutomationDetails = sarif.NewRunAutomationDetails()
		}
		run.AutomationDetails.WithID(category)
	}
	return doc.PrettyWrite(w)
}

// WriteCounts writes counts (Result.Counts: every severity, zeros
// included) as one JSON object, e.g. {"CRITICAL":1,"HIGH":0,"LOW":3,
// "MEDIUM":0,"UNKNOWN":0}: what a pipeline reads to summarise a scan
// without parsing Trivy's report.
func WriteCounts(w io.Writer, counts map[string]int) error {
	return json.NewEncoder(w).Encode(counts)
}

// trivyImage gives Trivy's image artifact an image opened by imagesrc.
type trivyImage struct {
	v1.Image
	img *imagesrc.Image
}

func (t trivyImage) Name() string          { return t.img.Reference() }
func (t trivyImage) ID() (string, error)   { return fimage.ID(t.Image) }
func (t trivyImage) RepoTags() []string    { return t.img.RepoTags }
func (t trivyImage) RepoDigests() []string { return t.img.RepoDigests }

var _ ftypes.Image = trivyImage{}

// status names s the way trivy's reports do ("fixed", "affected", ...).
func status(s dbTypes.Status) string { return (&s).String() }
