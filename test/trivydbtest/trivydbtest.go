// Package trivydbtest writes small but real Trivy vulnerability databases
// for tests: a bbolt trivy.db in the bucket layout trivy-db's build produces
// (advisories under "<ecosystem>::<data source>" or "<os> <release>", the
// merged "vulnerability" bucket, "data-source"), and the metadata.json
// beside it, so that `botcore scan --db-dir DIR` reads it with the real
// scanner and no network.
//
// It follows trivy-db's own build (vulndb.TrivyDB.Build: insert advisory
// details, then optimize and clean up) through trivy-db's Go API, without
// importing trivy-db's vulnsrc registry, whose GHSA source runs `go list
// std` when it is loaded.
package trivydbtest

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	"github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/bucket"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/vulnerability"
	bolt "go.etcd.io/bbolt"
)

// Ecosystems of language advisories: the GitHub Advisory Database names and
// the bucket each one lands in, as trivy-db's GHSA source writes them.
const (
	Npm   = "npm"
	PyPI  = "pip"
	Cargo = "cargo"
	Go    = "go"
)

// Advisory is one vulnerability of one package. Set Ecosystem for a
// language package, or Debian for a Debian package.
type Advisory struct {
	ID       string // e.g. CVE-2099-0001
	Package  string // npm/PyPI/crate/Go module name, or Debian source package
	Severity string // UNKNOWN, LOW, MEDIUM, HIGH or CRITICAL
	Title    string

	// Language packages: the ecosystem and the affected range in the
	// ecosystem's syntax (npm: ">=15.0.0, <15.5.30"), with the fixed
	// versions ("15.5.30"); no Patched means no fix.
	Ecosystem  string
	Vulnerable []string
	Patched    []string

	// Debian packages: the release ("13") and the version that fixes it;
	// an empty Fixed is an open ("affected") vulnerability.
	Debian string
	Fixed  string
}

// Write writes trivy.db and metadata.json into dir (created if missing).
// The metadata carries the schema version this trivy-db build expects and
// a NextUpdate a day ahead, like a freshly downloaded DB.
func Write(dir string, advisories ...Advisory) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// trivy-db keeps one process-wide handle: write, then close, so that the
	// scanner can open the file read-only afterwards.
	if err := db.Init(dir); err != nil {
		return fmt.Errorf("create %s: %w", db.Path(dir), err)
	}
	werr := write(advisories)
	if err := db.Close(); err != nil && werr == nil {
		werr = err
	}
	if werr != nil {
		return werr
	}
	now := time.Now().UTC()
	return metadata.NewClient(dir).Update(metadata.Metadata{
		Version:      db.SchemaVersion,
		NextUpdate:   now.Add(24 * time.Hour),
		UpdatedAt:    now,
		DownloadedAt: now,
	})
}

func write(advisories []Advisory) error {
	dbc := db.Config{}
	details := map[string]map[types.SourceID]types.VulnerabilityDetail{}
	err := dbc.BatchUpdate(func(tx *bolt.Tx) error {
		for _, a := range advisories {
			sev, err := types.NewSeverity(strings.ToUpper(a.Severity))
			if err != nil {
				return fmt.Errorf("%s: %w", a.ID, err)
			}
			bkt, src, adv, err := placement(a, sev)
			if err != nil {
				return err
			}
			if err := dbc.PutDataSource(tx, bkt, src); err != nil {
				return err
			}
			if err := dbc.PutAdvisoryDetail(tx, a.ID, a.Package, []string{bkt}, adv); err != nil {
				return err
			}
			detail := types.VulnerabilityDetail{
				ID:          a.ID,
				Severity:    sev,
				Title:       a.Title,
				Description: a.Title,
				References:  []string{"https://example.com/advisories/" + a.ID},
			}
			if err := dbc.PutVulnerabilityDetail(tx, a.ID, src.ID, detail); err != nil {
				return err
			}
			if details[a.ID] == nil {
				details[a.ID] = map[types.SourceID]types.VulnerabilityDetail{}
			}
			details[a.ID][src.ID] = detail
		}
		// trivy-db's optimize step: copy each advisory into its vendor
		// bucket and store the merged vulnerability the scanner reads
		// severities and titles from.
		vc := vulnerability.New(dbc)
		for id, d := range details {
			if err := dbc.SaveAdvisoryDetails(tx, id); err != nil {
				return err
			}
			if err := dbc.PutVulnerability(tx, id, vc.Normalize(id, d)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// trivy-db's cleanup step.
	if err := dbc.DeleteVulnerabilityDetailBucket(); err != nil {
		return err
	}
	return dbc.DeleteAdvisoryDetailBucket()
}

// placement gives the bucket, data source and stored advisory of a.
func placement(a Advisory, sev types.Severity) (string, types.DataSource, types.Advisory, error) {
	if a.Debian != "" {
		b := bucket.NewDebian(a.Debian)
		src := types.DataSource{
			ID:   vulnerability.Debian,
			Name: "Debian Security Tracker",
			URL:  "https://salsa.debian.org/security-tracker-team/security-tracker",
		}
		adv := types.Advisory{FixedVersion: a.Fixed, Severity: sev}
		if a.Fixed == "" {
			adv.Status = types.StatusAffected
		}
		return b.Name(), src, adv, nil
	}
	ghsa := map[string]string{Npm: "npm", PyPI: "pip", Cargo: "Rust", Go: "Go"}[a.Ecosystem]
	if ghsa == "" {
		return "", types.DataSource{}, types.Advisory{}, fmt.Errorf("%s: set Debian, or Ecosystem to npm, pip, cargo or go", a.ID)
	}
	src := types.DataSource{
		ID:   vulnerability.GHSA,
		Name: "GitHub Security Advisory " + ghsa,
		URL:  "https://github.com/advisories?query=type%3Areviewed+ecosystem%3A" + strings.ToLower(ghsa),
	}
	var b bucket.DataSourceBucket
	var err error
	switch a.Ecosystem {
	case Npm:
		b, err = bucket.NewNpm(src)
	case PyPI:
		b, err = bucket.NewPyPI(src)
	case Cargo:
		b, err = bucket.NewCargo(src)
	case Go:
		b, err = bucket.NewGo(src)
	}
	if err != nil {
		return "", types.DataSource{}, types.Advisory{}, err
	}
	adv := types.Advisory{VulnerableVersions: a.Vulnerable, PatchedVersions: a.Patched}
	return b.Name(), src, adv, nil
}
