package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bot-core/delivery/pipelines/labels"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/bot-core/delivery/pipelines/registry/registrytest"
)

type result struct {
	code           int
	stdout, stderr string
}

// botcore runs the CLI in-process with env as its whole environment.
func botcore(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut, func(k string) string { return env[k] })
	return result{code, out.String(), errOut.String()}
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// envFor gives full-access credentials for srv and an empty docker config.
func envFor(t *testing.T, srv *registrytest.Server) map[string]string {
	return map[string]string{
		"DOCKER_REGISTRY": srv.Host + "/bot",
		"DOCKER_USERNAME": srv.User,
		"DOCKER_PASSWORD": srv.Password,
		"DOCKER_CONFIG":   t.TempDir(),
		"HOME":            t.TempDir(),
	}
}

const svc = "rust-core-engine"

// seeded is what seed pushed to <host>/bot/rust-core-engine.
type seeded struct {
	repo    string
	digests map[string]string // tag -> digest
	created map[string]time.Time
}

var base = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// seed pushes a dozen releases v1.0.0..v1.2.3, v2.0.0-rc.1, and the tags
// 1.2.3, 1.2, latest (-> v1.2.3), main (-> v1.0.1), v1.1.3 sharing the digest
// of v1.2.2, and cosign .sig tags for v1.2.3 (kept) and v1.0.0 (deleted by
// cleanup --keep 3) plus a .att for v1.2.3.
func seed(t *testing.T, srv *registrytest.Server) seeded {
	t.Helper()
	s := seeded{repo: srv.Host + "/bot/" + svc, digests: map[string]string{}, created: map[string]time.Time{}}
	versions := []string{"v1.0.0", "v1.0.1", "v1.0.2", "v1.0.3", "v1.1.0", "v1.1.1", "v1.1.2", "v1.2.0", "v1.2.1", "v1.2.2", "v1.2.3"}
	for i, v := range versions {
		created := base.AddDate(0, 0, i)
		imageLabels := map[string]string{
			labels.LabelVersion: v,
			labels.LabelSource:  "https://github.com/acme/bot-core",
			labels.LabelCreated: created.Format(time.RFC3339),
		}
		// The config's own created field differs: the label must win.
		s.digests[v] = srv.Push(t, s.repo+":"+v, registrytest.Index(t, imageLabels, created.Add(-time.Hour)))
		s.created[v] = created
	}
	// A release re-tagged from an identical later build.
	srv.Tag(t, s.repo, "v1.1.3", s.digests["v1.2.2"])
	s.digests["v1.1.3"], s.created["v1.1.3"] = s.digests["v1.2.2"], s.created["v1.2.2"]
	// A pre-release with only the config's created field.
	rcCreated := base.AddDate(0, 2, 0)
	s.digests["v2.0.0-rc.1"] = srv.Push(t, s.repo+":v2.0.0-rc.1", registrytest.Index(t, map[string]string{labels.LabelVersion: "v2.0.0-rc.1"}, rcCreated))
	s.created["v2.0.0-rc.1"] = rcCreated
	for tag, target := range map[string]string{"1.2.3": "v1.2.3", "1.2": "v1.2.3", "latest": "v1.2.3", "main": "v1.0.1"} {
		srv.Tag(t, s.repo, tag, s.digests[target])
		s.digests[tag], s.created[tag] = s.digests[target], s.created[target]
	}
	for _, c := range []struct{ subject, kind string }{{"v1.2.3", "sig"}, {"v1.2.3", "att"}, {"v1.0.0", "sig"}} {
		tag := registry.CosignTag(s.digests[c.subject], c.kind)
		s.digests[tag] = srv.PushImage(t, s.repo+":"+tag)
	}
	return s
}

func TestHelpAndUsage(t *testing.T) {
	r := botcore(t, nil, "", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "registry detect") || !strings.Contains(r.stdout, "cleanup") {
		t.Errorf("--help: %s", r)
	}
	r = botcore(t, nil, "", "frobnicate")
	if r.code != 2 || !strings.Contains(r.stderr, "unexpected argument frobnicate") {
		t.Errorf("unknown command: %s", r)
	}
	r = botcore(t, nil, "", "cleanup")
	if r.code != 2 || !strings.Contains(r.stderr, "--keep") {
		t.Errorf("missing --keep: %s", r)
	}
	r = botcore(t, map[string]string{}, "", "versions")
	if r.code != 1 || !strings.Contains(r.stderr, "no registry prefix given: pass --registry or set DOCKER_REGISTRY") {
		t.Errorf("no registry: %s", r)
	}
}

func TestDetect(t *testing.T) {
	r := botcore(t, nil, "", "registry", "detect", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/bot-core")
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, want := range []string{"kind", "ecr", "region", "eu-west-1", "account", "123456789012",
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com/bot-core/nextjs-ui-dashboard"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("detect output lacks %q:\n%s", want, r.stdout)
		}
	}

	// --json, with the reference from DOCKER_REGISTRY.
	r = botcore(t, map[string]string{"DOCKER_REGISTRY": "europe-docker.pkg.dev/p/r"}, "", "--json", "registry", "detect")
	var info registry.Info
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	want := registry.Info{Kind: registry.KindGAR, Registry: "europe-docker.pkg.dev", Repository: "p/r", Project: "p", Location: "europe", RegistryName: "r"}
	if !reflect.DeepEqual(info, want) {
		t.Errorf("got %+v", info)
	}
	// --registry wins over DOCKER_REGISTRY.
	r = botcore(t, map[string]string{"DOCKER_REGISTRY": "europe-docker.pkg.dev/p/r"}, "", "--json", "--registry", "[::1]:5000/x", "registry", "detect")
	if !strings.Contains(r.stdout, `"insecure": true`) || !strings.Contains(r.stdout, `"registry": "[::1]:5000"`) {
		t.Errorf("flag did not win: %s", r)
	}

	r = botcore(t, nil, "", "registry", "detect", "ghcr.io/Acme/bot-core:v1")
	if r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 ||
		!strings.Contains(r.stderr, "give a repository prefix such as ghcr.io/acme/bot-core") {
		t.Errorf("invalid reference: %s", r)
	}
}

func TestLogin(t *testing.T) {
	for _, kind := range []string{"basic", "bearer"} {
		t.Run(kind, func(t *testing.T) {
			srv := registrytest.NewBasic(t)
			if kind == "bearer" {
				srv = registrytest.NewBearer(t)
			}
			cfgDir := filepath.Join(t.TempDir(), "docker")
			if err := os.MkdirAll(cfgDir, 0o700); err != nil {
				t.Fatal(err)
			}
			existing := `{"auths": {"other.example.com": {"auth": "b3RoZXI6b3RoZXI="}}, "psFormat": "table {{.ID}}"}`
			if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(existing), 0o644); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"DOCKER_REGISTRY": srv.Host + "/bot", "DOCKER_CONFIG": cfgDir}

			// Wrong password: one sentence, exit 1, nothing written.
			r := botcore(t, env, "wrong-password\n", "registry", "login", "--username", srv.User, "--password-stdin")
			wantErr := fmt.Sprintf("botcore: registry %s rejected the credentials for %s: check the user name and the password or token\n", srv.Host, srv.User)
			if r.code != 1 || !strings.HasSuffix(r.stderr, wantErr) {
				t.Errorf("wrong password: %s\nwant stderr ending %q", r, wantErr)
			}
			if b, _ := os.ReadFile(filepath.Join(cfgDir, "config.json")); string(b) != existing {
				t.Errorf("config changed by a failed login: %s", b)
			}

			r = botcore(t, env, srv.Password+"\n", "registry", "login", "-u", srv.User, "--password-stdin")
			if r.code != 0 {
				t.Fatal(r)
			}
			if strings.Contains(r.stdout+r.stderr, srv.Password) {
				t.Error("the password was printed")
			}
			path := filepath.Join(cfgDir, "config.json")
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("config.json mode %v, want 0600", st.Mode().Perm())
			}
			var cfg struct {
				Auths    map[string]map[string]string `json:"auths"`
				PSFormat string                       `json:"psFormat"`
			}
			b, _ := os.ReadFile(path)
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			wantAuth := base64.StdEncoding.EncodeToString([]byte(srv.User + ":" + srv.Password))
			if got := cfg.Auths[srv.Host]["auth"]; got != wantAuth {
				t.Errorf("auth %q, want %q", got, wantAuth)
			}
			if cfg.Auths["other.example.com"]["auth"] != "b3RoZXI6b3RoZXI=" || cfg.PSFormat != "table {{.ID}}" {
				t.Errorf("other settings lost: %s", b)
			}

			// The saved credentials are used when no env credentials are set.
			srv.Push(t, srv.Host+"/bot/"+svc+":v1.0.0", registrytest.Index(t, nil, base))
			r = botcore(t, env, "", "versions", "--service", svc)
			if r.code != 0 || !strings.Contains(r.stdout, "v1.0.0") {
				t.Errorf("versions with saved credentials: %s", r)
			}
		})
	}
}

func TestLoginPasswordFromEnvAndReadOnly(t *testing.T) {
	srv := registrytest.NewBasic(t)
	env := map[string]string{"DOCKER_REGISTRY": srv.Host + "/bot", "DOCKER_CONFIG": t.TempDir(),
		"DOCKER_USERNAME": srv.ReadUser, "DOCKER_PASSWORD": srv.ReadPassword}
	r := botcore(t, env, "", "registry", "login")
	want := fmt.Sprintf("registry %s denied push access to %s/bot/rust-core-engine", srv.Host, srv.Host)
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("read-only login: %s\nwant %q", r, want)
	}
	r = botcore(t, map[string]string{"DOCKER_REGISTRY": srv.Host + "/bot"}, "", "registry", "login", "-u", "x")
	if r.code != 1 || !strings.Contains(r.stderr, "no password given") {
		t.Errorf("no password: %s", r)
	}
}

func TestVersions(t *testing.T) {
	srv := registrytest.NewBearer(t)
	s := seed(t, srv)
	env := envFor(t, srv)

	r := botcore(t, env, "", "--json", "versions", "--service", svc)
	if r.code != 0 {
		t.Fatal(r)
	}
	var got []struct {
		Service string             `json:"service"`
		Tags    []registry.TagInfo `json:"tags"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if len(got) != 1 || got[0].Service != svc {
		t.Fatalf("services %+v", got)
	}
	var order []string
	for _, ti := range got[0].Tags {
		order = append(order, ti.Tag)
		if ti.Digest != s.digests[ti.Tag] {
			t.Errorf("%s digest %s, want %s", ti.Tag, ti.Digest, s.digests[ti.Tag])
		}
		if want, ok := s.created[ti.Tag]; ok && (ti.Created == nil || !ti.Created.Equal(want)) {
			t.Errorf("%s created %v, want %v", ti.Tag, ti.Created, want)
		}
	}
	sig123 := registry.CosignTag(s.digests["v1.2.3"], "sig")
	att123 := registry.CosignTag(s.digests["v1.2.3"], "att")
	sig100 := registry.CosignTag(s.digests["v1.0.0"], "sig")
	cosign := []string{sig123, att123, sig100}
	slices.Sort(cosign)
	want := append([]string{"v2.0.0-rc.1", "v1.2.3", "1.2.3", "v1.2.2", "v1.2.1", "v1.2.0", "v1.1.3", "v1.1.2", "v1.1.1",
		"v1.1.0", "v1.0.3", "v1.0.2", "v1.0.1", "v1.0.0", "1.2", "latest", "main"}, cosign...)
	if !reflect.DeepEqual(order, want) {
		t.Errorf("order\n got %v\nwant %v", order, want)
	}

	// The table marks non-semver tags; progress goes to stderr.
	r = botcore(t, env, "", "versions", "-s", svc)
	if r.code != 0 {
		t.Fatal(r)
	}
	lines := strings.Split(r.stdout, "\n")
	if !strings.Contains(lines[2], "v2.0.0-rc.1") || !strings.Contains(lines[2], "prerelease") {
		t.Errorf("first row %q", lines[2])
	}
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "main ") && !strings.Contains(l, "other (not semver)") {
			t.Errorf("main not marked: %q", l)
		}
		if strings.HasPrefix(strings.TrimSpace(l), "v1.0.0 ") && !strings.Contains(l, "2024-01-01T00:00:00Z") {
			t.Errorf("v1.0.0 row lacks its label date: %q", l)
		}
	}
	if !strings.Contains(r.stderr, "listing tags of "+s.repo) {
		t.Errorf("no progress on stderr: %q", r.stderr)
	}

	// A service that was never published: the promised sentence.
	r = botcore(t, env, "", "versions", "-s", "python-ai-service")
	wantErr := fmt.Sprintf("botcore: repository %s/bot/python-ai-service does not exist on %s: check the registry prefix and the service name, or publish a release first\n", srv.Host, srv.Host)
	if r.code != 1 || !strings.HasSuffix(r.stderr, wantErr) {
		t.Errorf("unknown repo: %s\nwant %q", r, wantErr)
	}
}

func TestWrongCredentials(t *testing.T) {
	for _, kind := range []string{"basic", "bearer"} {
		t.Run(kind, func(t *testing.T) {
			srv := registrytest.NewBasic(t)
			if kind == "bearer" {
				srv = registrytest.NewBearer(t)
			}
			env := envFor(t, srv)
			env["DOCKER_PASSWORD"] = "not-the-password"
			r := botcore(t, env, "", "versions", "-s", svc)
			want := fmt.Sprintf("botcore: registry %s rejected the credentials for %s/bot/%s: check DOCKER_USERNAME/DOCKER_PASSWORD (or run `botcore registry login`)\n", srv.Host, srv.Host, svc)
			if r.code != 1 || r.stderr[strings.LastIndex(strings.TrimSuffix(r.stderr, "\n"), "\n")+1:] != want {
				t.Errorf("%s\nwant last stderr line %q", r, want)
			}
		})
	}
}

func TestUnreachableRegistry(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := botcore(t, map[string]string{"DOCKER_REGISTRY": addr + "/bot", "DOCKER_CONFIG": t.TempDir()}, "", "inspect", svc+":v1")
	if r.code != 1 || !strings.Contains(r.stderr, "botcore: cannot reach registry "+addr+": the connection was refused") {
		t.Errorf("%s", r)
	}
}

func TestInspect(t *testing.T) {
	srv := registrytest.NewBearer(t)
	s := seed(t, srv)
	env := envFor(t, srv)

	r := botcore(t, env, "", "--json", "inspect", svc+":v1.2.3")
	if r.code != 0 {
		t.Fatal(r)
	}
	var got registry.Inspection
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if got.Digest != s.digests["v1.2.3"] || !got.Index || got.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("inspection %+v", got)
	}
	var platforms []string
	for _, p := range got.Platforms {
		platforms = append(platforms, p.Platform)
		if p.Labels[labels.LabelVersion] != "v1.2.3" || p.Labels[labels.LabelSource] != "https://github.com/acme/bot-core" {
			t.Errorf("%s labels %v", p.Platform, p.Labels)
		}
		if p.Size < 512 || p.Layers != 2 {
			t.Errorf("%s size %d layers %d", p.Platform, p.Size, p.Layers)
		}
	}
	if !reflect.DeepEqual(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("platforms %v", platforms)
	}
	if got.SignatureTag != registry.CosignTag(s.digests["v1.2.3"], "sig") || got.AttestationTag != registry.CosignTag(s.digests["v1.2.3"], "att") {
		t.Errorf("cosign tags %q %q", got.SignatureTag, got.AttestationTag)
	}

	// Table output, by digest; v1.2.2 has no signature.
	r = botcore(t, env, "", "inspect", svc+"@"+s.digests["v1.2.2"])
	for _, want := range []string{"digest       " + s.digests["v1.2.2"], "signature    none", "platforms    2", "linux/arm64", "label    org.opencontainers.image.version=v1.2.2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, r)
		}
	}

	// A tag that does not exist: the promised sentence.
	r = botcore(t, env, "", "inspect", svc+":v9.9.9")
	want := fmt.Sprintf("botcore: tag v9.9.9 does not exist in %s: run `botcore versions` to list the published tags\n", s.repo)
	if r.code != 1 || !strings.HasSuffix(r.stderr, want) {
		t.Errorf("%s\nwant stderr ending %q", r, want)
	}
	r = botcore(t, env, "", "inspect", "Bad/Name:v1")
	if r.code != 1 || !strings.Contains(r.stderr, "give SERVICE:TAG") {
		t.Errorf("bad image: %s", r)
	}
}

func TestCleanup(t *testing.T) {
	srv := registrytest.NewBearer(t)
	s := seed(t, srv)
	env := envFor(t, srv)
	before := srv.Tags(t, s.repo)

	doomed := []string{"v1.2.0", "v1.1.2", "v1.1.1", "v1.1.0", "v1.0.3", "v1.0.2", "v1.0.0"}
	wantPromised := map[string]bool{}
	for _, tag := range doomed {
		wantPromised[s.digests[tag]] = true
	}
	// The signature of a deleted release goes with it.
	wantDeleted := map[string]bool{}
	for d := range wantPromised {
		wantDeleted[d] = true
	}
	wantDeleted[s.digests[registry.CosignTag(s.digests["v1.0.0"], "sig")]] = true

	// Dry run: lists, deletes nothing.
	r := botcore(t, env, "", "--json", "cleanup", "--keep", "3", "-s", svc)
	if r.code != 0 {
		t.Fatal(r)
	}
	var report cleanupReport
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if !report.DryRun || len(report.Services) != 1 || report.Services[0].Deleted != 0 {
		t.Fatalf("report %+v", report)
	}
	plan := report.Services[0].Plan
	promised := map[string]bool{}
	for _, d := range plan.Delete {
		promised[d.Digest] = true
	}
	if !reflect.DeepEqual(promised, wantPromised) {
		t.Errorf("promised %v\nwant %v", plan.Delete, doomed)
	}
	if want := []string{"2.0.0-rc.1", "1.2.3", "1.2.2", "1.2.1"}; !reflect.DeepEqual(plan.KeptReleases, want) {
		t.Errorf("kept releases %v", plan.KeptReleases)
	}
	after := srv.Tags(t, s.repo)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("dry run changed tags: %v -> %v", before, after)
	}
	r = botcore(t, env, "", "cleanup", "--keep", "3", "-s", svc)
	if r.code != 0 || !strings.Contains(r.stdout, "dry run: would delete 7 releases (22 manifests, 8 tags) in 1 repository") {
		t.Errorf("dry run table: %s", r)
	}

	// A read-only user gets the promised sentence and deletes nothing.
	ro := envFor(t, srv)
	ro["DOCKER_USERNAME"], ro["DOCKER_PASSWORD"] = srv.ReadUser, srv.ReadPassword
	r = botcore(t, ro, "", "cleanup", "--keep", "3", "-s", svc, "--yes")
	if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("registry %s denied delete access to %s", srv.Host, s.repo)) {
		t.Errorf("read-only cleanup: %s", r)
	}

	// --yes deletes exactly the promised digests.
	r = botcore(t, env, "", "cleanup", "--keep", "3", "-s", svc, "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "deleted 7 releases (22 manifests, 8 tags) in 1 repository") {
		t.Fatalf("cleanup --yes: %s", r)
	}
	for tag, d := range s.digests {
		if exists := srv.Exists(t, s.repo, d); exists == wantDeleted[d] {
			t.Errorf("%s (%s): exists=%v after cleanup", tag, d, exists)
		}
	}
	left := srv.Tags(t, s.repo)
	var wantLeft []string
	for tag := range s.digests {
		if !wantDeleted[s.digests[tag]] {
			wantLeft = append(wantLeft, tag)
		}
	}
	slices.Sort(left)
	slices.Sort(wantLeft)
	if !reflect.DeepEqual(left, wantLeft) {
		t.Errorf("tags left %v\nwant %v", left, wantLeft)
	}
	for _, kept := range []string{"latest", "main", "v1.1.3", "v1.0.1", "1.2"} {
		if !slices.Contains(left, kept) {
			t.Errorf("%s was deleted", kept)
		}
	}

	// Nothing left to do.
	r = botcore(t, env, "", "cleanup", "--keep", "3", "-s", svc, "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "deleted 0 releases (0 manifests, 0 tags)") {
		t.Errorf("second cleanup: %s", r)
	}
	r = botcore(t, env, "", "cleanup", "--keep", "0", "-s", svc)
	if r.code != 1 || !strings.Contains(r.stderr, "--keep 0 is too low: cleanup must keep at least 1 release so that it never deletes every release; pass --keep 1 or more") {
		t.Errorf("keep 0: %s", r)
	}
}
