package repo_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const workflowPath = ".github/workflows/release.yml"

// The workflow's jobs: pull requests build and scan in prJob, everything
// else publishes in publishJob, and scanJob uploads either one's SARIF.
const (
	prJob      = "pull-request"
	publishJob = "publish"
	scanJob    = "code-scanning"
)

// buildJobs are the jobs that run `dagger call build-all`.
var buildJobs = []string{prJob, publishJob}

// TestWorkflowActionlint lints the release workflow with actionlint used as
// a library. That program lives in its own module, test/repo/actionlint:
// actionlint v1.7.12 does not compile against the go.yaml.in/yaml/v4 the
// root module needs for compose-go. shellcheck and pyflakes run when they are
// on PATH; without them those two integrations are off and every other rule
// still runs.
func TestWorkflowActionlint(t *testing.T) {
	dir := root(t)
	cmd := exec.Command("go", "run", ".", filepath.Join(dir, workflowPath))
	cmd.Dir = filepath.Join(dir, "test", "repo", "actionlint")
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go run ./test/repo/actionlint: %v\n%s", err, stderr.String())
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Log(s)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var e struct {
			File, Kind, Message string
			Line, Column        int
		}
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("actionlint output: %v\n%s", err, out)
		}
		t.Errorf("%s:%d:%d: %s [%s]", workflowPath, e.Line, e.Column, e.Message, e.Kind)
	}
}

// workflowDoc is the decoded workflow.
type workflowDoc struct {
	raw  string
	top  map[string]any
	jobs map[string]map[string]any
}

func loadWorkflow(t *testing.T) workflowDoc {
	t.Helper()
	raw := readFile(t, workflowPath)
	var top map[string]any
	if err := yaml.Unmarshal([]byte(raw), &top); err != nil {
		t.Fatalf("%s: %v", workflowPath, err)
	}
	w := workflowDoc{raw: raw, top: top, jobs: map[string]map[string]any{}}
	for name, j := range asMap(top["jobs"]) {
		w.jobs[name] = asMap(j)
	}
	want := []string{scanJob, publishJob, prJob}
	slices.Sort(want)
	if got := slices.Sorted(mapKeys(w.jobs)); !slices.Equal(got, want) {
		t.Fatalf("%s: jobs %v, want exactly %v (pull-request build, publish, code scanning)", workflowPath, got, want)
	}
	return w
}

// jobNames is every job, sorted.
func (w workflowDoc) jobNames() []string { return slices.Sorted(mapKeys(w.jobs)) }

func (w workflowDoc) steps(job string) []map[string]any {
	var out []map[string]any
	steps, _ := w.jobs[job]["steps"].([]any)
	for _, s := range steps {
		out = append(out, asMap(s))
	}
	return out
}

func stepName(s map[string]any) string {
	if n := asString(s["name"]); n != "" {
		return n
	}
	return asString(s["uses"])
}

func usesAction(s map[string]any, action string) bool {
	return strings.HasPrefix(asString(s["uses"]), action+"@")
}

// stepsUsing is every step of job that uses action.
func (w workflowDoc) stepsUsing(job, action string) []map[string]any {
	var out []map[string]any
	for _, s := range w.steps(job) {
		if usesAction(s, action) {
			out = append(out, s)
		}
	}
	return out
}

// stepUsing is the one step of job that uses action.
func (w workflowDoc) stepUsing(t *testing.T, job, action string) map[string]any {
	t.Helper()
	steps := w.stepsUsing(job, action)
	if len(steps) != 1 {
		t.Fatalf("%s: job %s has %d steps using %s, want one", workflowPath, job, len(steps), action)
	}
	return steps[0]
}

// permissionsOf reads a permissions: mapping; a shorthand such as read-all
// or write-all is an error.
func permissionsOf(v any) (map[string]string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("permissions: %v is not a mapping of scopes", v)
	}
	out := map[string]string{}
	for k, v := range m {
		out[k] = asString(v)
	}
	return out, nil
}

// environmentOf is a job's environment name (environment: NAME or
// environment: {name: NAME}).
func environmentOf(job map[string]any) string {
	if m := asMap(job["environment"]); m != nil {
		return asString(m["name"])
	}
	return asString(job["environment"])
}

func TestWorkflowTriggersPermissionsConcurrency(t *testing.T) {
	w := loadWorkflow(t)
	on := asMap(w.top["on"])
	if got := slices.Sorted(mapKeys(on)); !slices.Equal(got, []string{"pull_request", "push", "workflow_dispatch"}) {
		t.Errorf("triggers = %v, want push, pull_request, workflow_dispatch", got)
	}
	push := asMap(on["push"])
	if b := toStrings(push["branches"]); !sameStrings(b, []string{"main", "develop"}) {
		t.Errorf("push.branches = %v, want [main develop]", b)
	}
	if tags := toStrings(push["tags"]); !slices.Equal(tags, []string{"v*"}) {
		t.Errorf("push.tags = %v, want [v*]", tags)
	}
	version := asMap(asMap(asMap(on["workflow_dispatch"])["inputs"])["version"])
	if version == nil || version["required"] != false {
		t.Errorf("workflow_dispatch needs an optional input version, got %v", asMap(on["workflow_dispatch"]))
	}

	group := asString(asMap(w.top["concurrency"])["group"])
	if !strings.Contains(group, "github.ref") {
		t.Errorf("concurrency.group = %q: want one group per ref (github.ref)", group)
	}
}

// TestWorkflowPermissions: the workflow grants nothing by default (at most
// contents: read); every job names exactly the permissions it needs; only
// the publishing job can write packages, mint an OIDC token or use the
// release environment.
func TestWorkflowPermissions(t *testing.T) {
	w := loadWorkflow(t)
	topRaw, ok := w.top["permissions"]
	if !ok {
		t.Error("no top-level permissions: a job without its own would get the repository's default token permissions")
	} else if top, err := permissionsOf(topRaw); err != nil {
		t.Errorf("top-level %v", err)
	} else {
		for k, v := range top {
			if k != "contents" || v != "read" {
				t.Errorf("top-level permissions grant %s: %s; want {} (or contents: read only)", k, v)
			}
		}
	}

	want := map[string]map[string]string{
		prJob:      {"contents": "read"},
		publishJob: {"contents": "read", "packages": "write", "id-token": "write"},
		scanJob:    {"contents": "read", "security-events": "write", "actions": "read"},
	}
	for _, name := range w.jobNames() {
		job := w.jobs[name]
		raw, ok := job["permissions"]
		if !ok {
			t.Errorf("job %s has no permissions: of its own", name)
			continue
		}
		perms, err := permissionsOf(raw)
		if err != nil {
			t.Errorf("job %s: %v", name, err)
			continue
		}
		if fmt.Sprint(perms) != fmt.Sprint(want[name]) {
			t.Errorf("job %s permissions = %v, want exactly %v", name, perms, want[name])
		}
		if name == publishJob {
			continue
		}
		for _, scope := range []string{"id-token", "packages"} {
			if _, ok := perms[scope]; ok {
				t.Errorf("job %s has %s: %s; only %s may", name, scope, perms[scope], publishJob)
			}
		}
		if env := environmentOf(job); env != "" {
			t.Errorf("job %s runs in environment %q and would see its secrets; only %s may", name, env, publishJob)
		}
	}
	if env := environmentOf(w.jobs[publishJob]); env != "release" {
		t.Errorf("job %s environment = %q, want release (where owners require reviewers)", publishJob, env)
	}
}

// statusFunc matches a status-check function in an if:.
var statusFunc = regexp.MustCompile(`\b(always|success|failure|cancelled)\s*\(`)

// evalJobIf evaluates a job's if: as GitHub does: without a status-check
// function the condition is success() && (cond).
func evalJobIf(cond string, ctx exprContext) (tri, error) {
	cond = strings.TrimSpace(cond)
	if strings.HasPrefix(cond, "${{") && strings.HasSuffix(cond, "}}") {
		cond = strings.TrimSuffix(strings.TrimPrefix(cond, "${{"), "}}")
	}
	if cond == "" {
		cond = "success()"
	} else if !statusFunc.MatchString(cond) {
		cond = "success() && (" + cond + ")"
	}
	return evalIf(cond, ctx)
}

// workflowEvents are the events the per-event checks evaluate.
var workflowEvents = []struct {
	name string
	ctx  exprContext
}{
	{"push to main", exprContext{"github.event_name": "push", "github.ref": "refs/heads/main", "github.repository": "acme/bot-core"}},
	{"tag v1.2.3", exprContext{"github.event_name": "push", "github.ref": "refs/tags/v1.2.3", "github.repository": "acme/bot-core"}},
	{"workflow_dispatch", exprContext{"github.event_name": "workflow_dispatch", "github.ref": "refs/heads/main", "github.repository": "acme/bot-core"}},
	{"pull_request", exprContext{"github.event_name": "pull_request", "github.ref": "refs/pull/7/merge", "github.repository": "acme/bot-core",
		"github.event.pull_request.head.repo.full_name": "acme/bot-core"}},
	{"pull_request from a fork", exprContext{"github.event_name": "pull_request", "github.ref": "refs/pull/8/merge", "github.repository": "acme/bot-core",
		"github.event.pull_request.head.repo.full_name": "someone/bot-core"}},
}

func withCtx(base exprContext, kv ...string) exprContext {
	c := exprContext{}
	for k, v := range base {
		c[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		c[kv[i]] = kv[i+1]
	}
	return c
}

// TestWorkflowJobsPerEvent evaluates every job's if: per event: a pull
// request runs the pull-request build only, anything else the publishing
// build only; the code-scanning job needs both, runs after whichever ran
// (also when its vulnerability gate failed) if it produced SARIF, never
// for a cancelled run, and never for a pull request from a fork (its token
// is read-only).
func TestWorkflowJobsPerEvent(t *testing.T) {
	w := loadWorkflow(t)
	if needs := toStrings(w.jobs[scanJob]["needs"]); !sameStrings(needs, buildJobs) {
		t.Errorf("job %s needs %v, want %v", scanJob, needs, buildJobs)
	}
	for _, name := range buildJobs {
		if n := toStrings(w.jobs[name]["needs"]); len(n) > 0 {
			t.Errorf("job %s needs %v; the builds start at once", name, n)
		}
	}
	scanIf := asString(w.jobs[scanJob]["if"])
	if !strings.Contains(strings.ReplaceAll(scanIf, " ", ""), "!cancelled()") {
		t.Errorf("job %s if: %q: want !cancelled(), so that the skipped build does not skip it and a cancelled run does", scanJob, scanIf)
	}

	for _, ev := range workflowEvents {
		t.Run(ev.name, func(t *testing.T) {
			isPR := ev.ctx["github.event_name"] == "pull_request"
			fork := ev.ctx["github.event.pull_request.head.repo.full_name"] != "" &&
				ev.ctx["github.event.pull_request.head.repo.full_name"] != ev.ctx["github.repository"]
			var ran []string
			for _, name := range buildJobs {
				v, err := evalJobIf(asString(w.jobs[name]["if"]), withCtx(ev.ctx, "success()", "true"))
				if err != nil {
					t.Fatalf("job %s: if: %v", name, err)
				}
				if v == tUnknown {
					t.Fatalf("job %s: if: %q does not decide for this event", name, asString(w.jobs[name]["if"]))
				}
				if v == tTrue {
					ran = append(ran, name)
				}
			}
			want := publishJob
			if isPR {
				want = prJob
			}
			if !slices.Equal(ran, []string{want}) {
				t.Fatalf("jobs %v run, want exactly %s", ran, want)
			}
			skipped := prJob
			if want == prJob {
				skipped = publishJob
			}

			for _, result := range []string{"success", "failure"} {
				for _, sarif := range []string{"true", ""} {
					for _, cancelled := range []string{"false", "true"} {
						ctx := withCtx(ev.ctx,
							"needs."+want+".result", result,
							"needs."+want+".outputs.sarif", sarif,
							"needs."+skipped+".result", "skipped",
							"needs."+skipped+".outputs.sarif", "",
							// A need was skipped: success() is false.
							"success()", "false",
							"cancelled()", cancelled)
						v, err := evalJobIf(scanIf, ctx)
						if err != nil {
							t.Fatalf("job %s: if: %v", scanJob, err)
						}
						wantRun := sarif == "true" && cancelled == "false" && !fork
						if v == tUnknown || (v == tTrue) != wantRun {
							t.Errorf("%s %s, SARIF %q, cancelled %s: job %s runs = %v, want %v",
								want, result, sarif, cancelled, scanJob, v == tTrue, wantRun)
						}
					}
				}
			}
		})
	}
}

// TestWorkflowSarifOutput: each build job tells the code-scanning job
// whether it produced SARIF, through a step that runs even when the gate
// failed; the step is run here with bash.
func TestWorkflowSarifOutput(t *testing.T) {
	w := loadWorkflow(t)
	ref := regexp.MustCompile(`^\$\{\{\s*steps\.([A-Za-z0-9_-]+)\.outputs\.sarif\s*\}\}$`)
	for _, name := range buildJobs {
		out := asString(asMap(w.jobs[name]["outputs"])["sarif"])
		m := ref.FindStringSubmatch(out)
		if m == nil {
			t.Errorf("job %s outputs.sarif = %q, want ${{ steps.<id>.outputs.sarif }}", name, out)
			continue
		}
		var step map[string]any
		for _, s := range w.steps(name) {
			if asString(s["id"]) == m[1] {
				step = s
			}
		}
		if step == nil {
			t.Errorf("job %s: outputs.sarif names step %q, which it lacks", name, m[1])
			continue
		}
		cond := asString(step["if"])
		if !strings.Contains(cond, "always()") || !strings.Contains(cond, "hashFiles('dist/sarif/*.sarif')") {
			t.Errorf("job %s step %q if: %q, want always() and hashFiles('dist/sarif/*.sarif')", name, stepName(step), cond)
		}
		outFile := filepath.Join(t.TempDir(), "github_output")
		cmd := exec.Command("bash", "-eo", "pipefail", "-c", asString(step["run"]))
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GITHUB_OUTPUT=" + outFile}
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("job %s step %q: %v\n%s", name, stepName(step), err, b)
		}
		got, _ := os.ReadFile(outFile)
		if strings.TrimSpace(string(got)) != "sarif=true" {
			t.Errorf("job %s step %q writes %q to $GITHUB_OUTPUT, want sarif=true", name, stepName(step), got)
		}
	}
}

var pinned = regexp.MustCompile(`^[^@\s]+@[0-9a-f]{40}$`)

// TestWorkflowActionsPinned: every non-local action is pinned by a full
// commit SHA with the release it is as a comment, the same action at the
// same pin in every job, and checkout fetches the whole history (the commit
// time and tags need it) without keeping the token.
func TestWorkflowActionsPinned(t *testing.T) {
	w := loadWorkflow(t)
	usesLine := regexp.MustCompile(`(?m)^\s*(?:-\s*)?uses:\s*(\S+)(.*)$`)
	n := 0
	pins := map[string]string{}
	for _, m := range usesLine.FindAllStringSubmatch(w.raw, -1) {
		ref, rest := m[1], m[2]
		if strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "docker://") {
			continue
		}
		n++
		if !pinned.MatchString(ref) {
			t.Errorf("uses: %s is not pinned by a 40-hex commit SHA", ref)
		}
		if !regexp.MustCompile(`#\s*v\d+\.\d+\.\d+\s*$`).MatchString(rest) {
			t.Errorf("uses: %s has no `# vX.Y.Z` comment naming its release", ref)
		}
		action, _, _ := strings.Cut(ref, "@")
		pin := ref + strings.TrimSpace(rest)
		if prev, ok := pins[action]; ok && prev != pin {
			t.Errorf("%s is pinned twice differently: %q and %q", action, prev, pin)
		}
		pins[action] = pin
	}
	if n == 0 {
		t.Fatal("no uses: lines found")
	}
	for _, name := range buildJobs {
		co := w.stepUsing(t, name, "actions/checkout")
		with := asMap(co["with"])
		if d := asString(with["fetch-depth"]); d != "0" {
			t.Errorf("job %s: actions/checkout fetch-depth = %q, want 0", name, d)
		}
		if p := asString(with["persist-credentials"]); p != "false" {
			t.Errorf("job %s: actions/checkout persist-credentials = %q, want false", name, p)
		}
	}
}

// TestWorkflowDaggerVersion: the CLI each build job installs is the engine
// version dagger.json pins.
func TestWorkflowDaggerVersion(t *testing.T) {
	var mod struct {
		EngineVersion string `json:"engineVersion"`
	}
	if err := json.Unmarshal([]byte(readFile(t, "dagger.json")), &mod); err != nil {
		t.Fatal(err)
	}
	if mod.EngineVersion == "" {
		t.Fatal("dagger.json has no engineVersion")
	}
	w := loadWorkflow(t)
	for _, name := range buildJobs {
		got := asString(asMap(w.stepUsing(t, name, "dagger/dagger-for-github")["with"])["version"])
		if strings.TrimPrefix(got, "v") != strings.TrimPrefix(mod.EngineVersion, "v") {
			t.Errorf("job %s: dagger/dagger-for-github version %q, dagger.json engineVersion %q", name, got, mod.EngineVersion)
		}
	}
	if s := w.stepsUsing(scanJob, "dagger/dagger-for-github"); len(s) > 0 {
		t.Errorf("job %s installs Dagger; it only uploads SARIF", scanJob)
	}
}

// TestWorkflowUploads: each build job uploads the reports, the SARIF and the
// release record as one artifact for 90 days, even when the build failed,
// and puts the summary on the run page; the code-scanning job downloads that
// artifact and uploads its SARIF, which no build job can (they lack
// security-events: write).
func TestWorkflowUploads(t *testing.T) {
	w := loadWorkflow(t)
	artifact := map[string]string{}
	for _, name := range buildJobs {
		art := w.stepUsing(t, name, "actions/upload-artifact")
		with := asMap(art["with"])
		artifact[name] = asString(with["name"])
		if r := asString(with["retention-days"]); r != "90" {
			t.Errorf("job %s: upload-artifact retention-days = %q, want 90", name, r)
		}
		paths := strings.Fields(asString(with["path"]))
		for _, p := range []string{"dist/sbom", "dist/scan", "dist/sarif", "dist/release.json", "dist/summary.md"} {
			if !slices.Contains(paths, p) {
				t.Errorf("job %s: upload-artifact path %v lacks %s", name, paths, p)
			}
		}
		// The artifact's root is then dist/: downloaded to dist, it puts
		// the SARIF back at dist/sarif.
		for _, p := range paths {
			if !strings.HasPrefix(p, "dist/") {
				t.Errorf("job %s: upload-artifact path %s is outside dist/", name, p)
			}
		}
		cond := asString(art["if"])
		if !strings.Contains(cond, "always()") {
			t.Errorf("job %s: upload-artifact should run when the gate failed too (if: always() ...), got %q", name, cond)
		}
		if !strings.Contains(cond, "dist/sarif") {
			t.Errorf("job %s: upload-artifact if: %q skips the upload when only SARIF exists, which code scanning needs", name, cond)
		}
		found := false
		for _, s := range w.steps(name) {
			if r := asString(s["run"]); strings.Contains(r, "dist/summary.md") && strings.Contains(r, `>> "$GITHUB_STEP_SUMMARY"`) {
				found = true
				if !strings.Contains(asString(s["if"]), "always()") {
					t.Errorf("job %s: the job summary should be written when the gate failed too, if: %q", name, asString(s["if"]))
				}
			}
		}
		if !found {
			t.Errorf("job %s: no step appends dist/summary.md to $GITHUB_STEP_SUMMARY", name)
		}
		if s := w.stepsUsing(name, "github/codeql-action/upload-sarif"); len(s) > 0 {
			t.Errorf("job %s uploads SARIF itself; only %s has security-events: write", name, scanJob)
		}
	}
	if artifact[prJob] == "" || artifact[prJob] != artifact[publishJob] {
		t.Errorf("artifact names %v: want one name for both builds", artifact)
	}

	steps := w.steps(scanJob)
	dl := w.stepUsing(t, scanJob, "actions/download-artifact")
	dlWith := asMap(dl["with"])
	if n := asString(dlWith["name"]); n != artifact[prJob] {
		t.Errorf("job %s downloads artifact %q, the builds upload %q", scanJob, n, artifact[prJob])
	}
	if p := asString(dlWith["path"]); p != "dist" {
		t.Errorf("job %s downloads to %q, want dist (so that the SARIF is at dist/sarif)", scanJob, p)
	}
	sarif := w.stepUsing(t, scanJob, "github/codeql-action/upload-sarif")
	if slices.IndexFunc(steps, func(s map[string]any) bool { return usesAction(s, "actions/download-artifact") }) >
		slices.IndexFunc(steps, func(s map[string]any) bool { return usesAction(s, "github/codeql-action/upload-sarif") }) {
		t.Errorf("job %s uploads SARIF before downloading the artifact", scanJob)
	}
	if cond := asString(sarif["if"]); !strings.Contains(cond, "hashFiles('dist/sarif/*.sarif')") {
		t.Errorf("upload-sarif if: %q, want a check that dist/sarif has files", cond)
	}
	if f := asString(asMap(sarif["with"])["sarif_file"]); f != "dist/sarif" {
		t.Errorf("upload-sarif sarif_file = %q, want dist/sarif (one file per service and platform)", f)
	}
}

// TestWorkflowRegistryDefault runs, for each build job, the step that sets
// DOCKER_REGISTRY with bash: the default is ghcr.io/<owner>/bot-core,
// lower-cased, and a repository variable overrides it.
func TestWorkflowRegistryDefault(t *testing.T) {
	w := loadWorkflow(t)
	for _, name := range buildJobs {
		var step map[string]any
		for _, s := range w.steps(name) {
			if strings.Contains(asString(s["run"]), "DOCKER_REGISTRY=") && strings.Contains(asString(s["run"]), "$GITHUB_ENV") {
				step = s
			}
		}
		if step == nil {
			t.Errorf("job %s: no step writes DOCKER_REGISTRY to $GITHUB_ENV", name)
			continue
		}
		for _, tc := range []struct{ registryVar, want string }{
			{"", "ghcr.io/acme-corp/bot-core"},
			{"Harbor.Example.com/Team/bot-core", "harbor.example.com/team/bot-core"},
		} {
			ctx := exprContext{"github.repository_owner": "Acme-Corp", "vars.docker_registry": tc.registryVar}
			envFile := filepath.Join(t.TempDir(), "github_env")
			cmd := exec.Command("bash", "-eo", "pipefail", "-c", asString(step["run"]))
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GITHUB_ENV=" + envFile}
			for k, v := range asMap(step["env"]) {
				val, err := substitute(asString(v), ctx)
				if err != nil {
					t.Fatalf("job %s env %s: %v", name, k, err)
				}
				cmd.Env = append(cmd.Env, k+"="+val)
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("job %s %q: %v\n%s", name, stepName(step), err, out)
			}
			got, _ := os.ReadFile(envFile)
			if strings.TrimSpace(string(got)) != "DOCKER_REGISTRY="+tc.want {
				t.Errorf("job %s: vars.DOCKER_REGISTRY=%q, owner Acme-Corp: $GITHUB_ENV has %q, want DOCKER_REGISTRY=%s", name, tc.registryVar, got, tc.want)
			}
		}
	}
}

// daggerStep is a step that runs `dagger call build-all`.
type daggerStep struct {
	job   string
	step  map[string]any
	words []string // the dagger command, shell words
	text  string   // the command as written (continuations joined)
}

// function is the module function called and the arguments after it;
// the constructor's flags (`dagger call --tool X build-all`) come before.
func (d daggerStep) function() (string, []string) {
	for i := 2; i < len(d.words); i++ {
		if strings.HasPrefix(d.words[i], "--") {
			if i+1 < len(d.words) && !strings.HasPrefix(d.words[i+1], "--") {
				i++
			}
			continue
		}
		return d.words[i], d.words[i+1:]
	}
	return "", nil
}

// constructorFlags are the module's own flags, before the function.
func (d daggerStep) constructorFlags() map[string]string {
	fn, rest := d.function()
	out := map[string]string{}
	words := d.words[2 : len(d.words)-len(rest)-1]
	if fn == "" {
		words = d.words[2:]
	}
	for i := 0; i < len(words); i++ {
		name, _ := flagName(words[i])
		if i+1 < len(words) && !strings.HasPrefix(words[i+1], "--") {
			out[name] = words[i+1]
			i++
			continue
		}
		out[name] = ""
	}
	return out
}

func (w workflowDoc) daggerSteps(t *testing.T) []daggerStep {
	t.Helper()
	var out []daggerStep
	for _, job := range w.jobNames() {
		for _, s := range w.steps(job) {
			run := asString(s["run"])
			if !strings.Contains(run, "dagger call") {
				continue
			}
			lines, _ := joinContinuations(strings.Split(run, "\n"), 1)
			var found []daggerStep
			for _, l := range lines {
				cmds, err := splitShell(l)
				if err != nil {
					t.Fatalf("%q: %v", stepName(s), err)
				}
				for _, c := range cmds {
					if len(c.words) > 1 && c.words[0] == "dagger" {
						found = append(found, daggerStep{job: job, step: s, words: c.words, text: l})
					}
				}
			}
			if len(found) != 1 {
				t.Fatalf("job %s step %q runs %d dagger commands, want exactly one", job, stepName(s), len(found))
			}
			out = append(out, found...)
		}
	}
	if len(out) == 0 {
		t.Fatal("no step runs `dagger call`")
	}
	return out
}

// flagsOf returns build-all's flags (before `export`) with their values as
// written, and the flags of the rest of the chain. A ${VAR:+--flag "$VAR"}
// word counts as the flag.
func flagsOf(d daggerStep) (buildAll map[string]string, chain []string) {
	buildAll = map[string]string{}
	inChain := false
	for i := 0; i < len(d.words); i++ {
		w := d.words[i]
		if w == "export" {
			inChain = true
			continue
		}
		if strings.HasPrefix(w, "${") {
			for _, m := range regexp.MustCompile(`--([a-z][a-z0-9-]*)`).FindAllStringSubmatch(w, -1) {
				buildAll[m[1]] = w
			}
			continue
		}
		if !strings.HasPrefix(w, "--") {
			continue
		}
		name, _ := flagName(w)
		val := ""
		if i+1 < len(d.words) && !strings.HasPrefix(d.words[i+1], "--") {
			val = d.words[i+1]
		}
		if inChain {
			chain = append(chain, name+"="+val)
		} else {
			buildAll[name] = val
		}
	}
	return buildAll, chain
}

// secretMarkers are what a job that must not see secrets may not contain.
var secretMarkers = []string{"secrets.", "--registry-password", "--oidc-", "ACTIONS_ID_TOKEN", "--cosign-key"}

// TestWorkflowDaggerCall evaluates every job's and step's if: for a push, a
// tag, a manual run and pull requests, and checks what each event runs:
// exactly one `dagger call build-all`; on pull requests in the
// pull-request job, with --build-only and without any secret (no registry
// password, no OIDC token, no secrets.* in any job a pull request can run);
// otherwise in the publish job, publishing and signing.
func TestWorkflowDaggerCall(t *testing.T) {
	w := loadWorkflow(t)
	steps := w.daggerSteps(t)
	common := map[string]string{
		"git-ref":           "$GITHUB_REF",
		"git-sha":           "$GITHUB_SHA",
		"source-url":        "$GITHUB_SERVER_URL/$GITHUB_REPOSITORY",
		"source-date-epoch": "$(git log -1 --format=%ct)",
		"registry":          "$DOCKER_REGISTRY",
		"registry-username": "$DOCKER_USERNAME",
		"severity":          "HIGH,CRITICAL",
	}
	secretFlags := []string{"registry-password", "oidc-request-url", "oidc-request-token", "oidc-token", "cosign-key", "cosign-password"}

	for _, s := range []string{"env", "defaults"} {
		if b, _ := yaml.Marshal(w.top[s]); strings.Contains(string(b), "secrets.") {
			t.Errorf("a workflow-level %s: references secrets, which every job would see: %s", s, b)
		}
	}
	// Only the publishing job may touch a secret or a token.
	for _, name := range w.jobNames() {
		if name == publishJob {
			continue
		}
		b, _ := yaml.Marshal(w.jobs[name])
		for _, bad := range secretMarkers {
			if strings.Contains(string(b), bad) {
				t.Errorf("job %s contains %q; only %s may see secrets", name, bad, publishJob)
			}
		}
	}

	for _, ev := range workflowEvents {
		t.Run(ev.name, func(t *testing.T) {
			isPR := ev.ctx["github.event_name"] == "pull_request"
			// Every job's condition with both builds succeeded or skipped
			// left open: a job that may run counts.
			jobMayRun := map[string]bool{}
			for _, name := range w.jobNames() {
				v, err := evalJobIf(asString(w.jobs[name]["if"]), ev.ctx)
				if err != nil {
					t.Fatalf("job %s: if: %v", name, err)
				}
				jobMayRun[name] = v != tFalse
			}
			var running []daggerStep
			for _, d := range steps {
				jv, err := evalJobIf(asString(w.jobs[d.job]["if"]), withCtx(ev.ctx, "success()", "true"))
				if err != nil {
					t.Fatalf("job %s: if: %v", d.job, err)
				}
				sv, err := evalIf(asString(d.step["if"]), ev.ctx)
				if err != nil {
					t.Fatalf("step %q: if: %v", stepName(d.step), err)
				}
				if jv == tUnknown || sv == tUnknown {
					t.Fatalf("job %s step %q: if: does not decide for this event", d.job, stepName(d.step))
				}
				if jv == tTrue && sv == tTrue {
					running = append(running, d)
				}
			}
			builds := slices.DeleteFunc(slices.Clone(running), func(d daggerStep) bool { fn, _ := d.function(); return fn != "build-all" })
			if len(builds) != 1 {
				t.Fatalf("%d build-all steps run, want exactly one", len(builds))
			}
			d := builds[0]
			flags, chain := flagsOf(d)
			// With --record-failure a failed release still exports its
			// record (and the always() uploads get it); the job's verdict
			// is then check-release's, which must run after the build.
			if _, ok := flags["record-failure"]; !ok {
				t.Error("build-all without --record-failure: a failed release would upload no record")
			}
			checks := slices.DeleteFunc(slices.Clone(running), func(c daggerStep) bool { fn, _ := c.function(); return fn != "check-release" })
			if len(checks) != 1 || checks[0].job != d.job || !slices.Equal(checks[0].words[3:], []string{"--record", "dist/release.json"}) {
				t.Fatalf("want one `dagger call check-release --record dist/release.json` in job %s, got %v", d.job, checks)
			}
			steps := w.steps(d.job)
			buildAt := slices.IndexFunc(steps, func(s map[string]any) bool { return stepName(s) == stepName(d.step) })
			checkAt := slices.IndexFunc(steps, func(s map[string]any) bool { return stepName(s) == stepName(checks[0].step) })
			if checkAt < buildAt {
				t.Errorf("check-release runs before build-all in job %s", d.job)
			}
			checkToolGiven(t, d, steps[:buildAt])
			for k, want := range common {
				if got, ok := flags[k]; !ok || got != want {
					t.Errorf("--%s %q, want %q", k, got, want)
				}
			}
			if !slices.Equal(chain, []string{"path=dist"}) {
				t.Errorf("chain after build-all: %v, want `export --path dist`", chain)
			}
			if _, ok := flags["pr"]; !ok {
				t.Errorf("no --pr (the pull request number, or 0)")
			}

			if isPR {
				if d.job != prJob {
					t.Errorf("a pull request builds in job %s, want %s", d.job, prJob)
				}
				if _, ok := flags["build-only"]; !ok {
					t.Error("pull request build without --build-only")
				}
				for _, f := range secretFlags {
					if _, ok := flags[f]; ok {
						t.Errorf("pull request build passes --%s", f)
					}
				}
				if !strings.Contains(d.text, "github.event.pull_request.number") {
					t.Errorf("--pr is not the pull request number: %q", flags["pr"])
				}
				// Nothing a pull request can run may touch a secret.
				for _, name := range w.jobNames() {
					if !jobMayRun[name] {
						continue
					}
					if name == publishJob {
						t.Errorf("job %s can run on a pull request", publishJob)
					}
					if environmentOf(w.jobs[name]) != "" {
						t.Errorf("job %s can run on a pull request and uses environment %q", name, environmentOf(w.jobs[name]))
					}
					for _, s := range w.steps(name) {
						v, err := evalIf(asString(s["if"]), ev.ctx)
						if err != nil {
							t.Fatalf("step %q: if: %v", stepName(s), err)
						}
						if v == tFalse {
							continue
						}
						b, _ := yaml.Marshal(s)
						for _, bad := range secretMarkers {
							if strings.Contains(string(b), bad) {
								t.Errorf("job %s step %q can run on a pull request and contains %q", name, stepName(s), bad)
							}
						}
					}
				}
				return
			}

			if d.job != publishJob {
				t.Errorf("a %s publishes in job %s, want %s", ev.name, d.job, publishJob)
			}
			if _, ok := flags["build-only"]; ok {
				t.Error("a publishing build passes --build-only")
			}
			for k, want := range map[string]string{
				"registry-password":  "env:DOCKER_PASSWORD",
				"oidc-request-url":   "env:ACTIONS_ID_TOKEN_REQUEST_URL",
				"oidc-request-token": "env:ACTIONS_ID_TOKEN_REQUEST_TOKEN",
				"pr":                 "0",
			} {
				if flags[k] != want {
					t.Errorf("--%s %q, want %q", k, flags[k], want)
				}
			}
			if v, ok := flags["version"]; !ok || !strings.Contains(v, "$VERSION") {
				t.Errorf("--version should come from the dispatch input only when given, got %q", v)
			}
			env := asMap(d.step["env"])
			for k, want := range map[string]string{
				"DOCKER_PASSWORD": "${{ secrets.DOCKER_PASSWORD || secrets.GITHUB_TOKEN }}",
				"DOCKER_USERNAME": "${{ vars.DOCKER_USERNAME || github.actor }}",
				"VERSION":         "${{ inputs.version }}",
			} {
				if got := asString(env[k]); got != want {
					t.Errorf("env %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestWorkflowDaggerFlagsExist: every flag the workflow passes is a
// parameter of BuildAll in ci/*.go, so CI fails here rather than in Actions.
func TestWorkflowDaggerFlagsExist(t *testing.T) {
	m := loadModule(t)
	for _, d := range loadWorkflow(t).daggerSteps(t) {
		words := slices.Clone(d.words)
		// ${VERSION:+--version "$VERSION"} is --version when the input is set.
		for i, w := range words {
			if strings.HasPrefix(w, "${") {
				if f := regexp.MustCompile(`--[a-z][a-z0-9-]*`).FindString(w); f != "" {
					words[i] = f + "=x"
				}
			}
		}
		if _, problems := checkDaggerCall(m, words); len(problems) > 0 {
			t.Errorf("%s, job %s step %q:\n  %s", workflowPath, d.job, stepName(d.step), strings.Join(problems, "\n  "))
		}
	}
}

func toStrings(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			out = append(out, asString(e))
		}
	case string:
		out = []string{x}
	}
	return out
}

// tri is a three-valued truth: a condition this test cannot decide (it
// depends on hashFiles(), or on the pull request's head repository) is
// tUnknown, and logic over it is Kleene's.
type tri int

const (
	tFalse tri = iota
	tTrue
	tUnknown
)

// checkToolGiven: build-all gets the botcore tool built on the runner (with
// setup-go's caches) by an earlier step, static and with Trivy's json/v2,
// so the engine compiles nothing.
func checkToolGiven(t *testing.T, d daggerStep, before []map[string]any) {
	t.Helper()
	tool, ok := d.constructorFlags()["tool"]
	if !ok {
		t.Errorf("job %s: build-all without --tool: the engine compiles the botcore tool on every run", d.job)
		return
	}
	setup := slices.IndexFunc(before, func(s map[string]any) bool { return usesAction(s, "actions/setup-go") })
	if setup < 0 || asString(asMap(before[setup]["with"])["go-version-file"]) != "go.mod" {
		t.Errorf("job %s: no actions/setup-go step with go-version-file go.mod before build-all", d.job)
	}
	build := slices.IndexFunc(before, func(s map[string]any) bool {
		words, err := splitShell(asString(s["run"]))
		return err == nil && len(words) == 1 && slices.Equal(words[0].words[:2], []string{"go", "build"})
	})
	if build < 0 || build < setup {
		t.Fatalf("job %s: no `go build` step after setup-go and before build-all", d.job)
	}
	words, _ := splitShell(asString(before[build]["run"]))
	w := words[0].words
	if o := slices.Index(w, "-o"); o < 0 || o+1 >= len(w) || w[o+1] != tool || w[len(w)-1] != "./cmd/botcore" {
		t.Errorf("job %s: %v does not build ./cmd/botcore into --tool's %s", d.job, w, tool)
	}
	env := asMap(before[build]["env"])
	for k, want := range map[string]string{"CGO_ENABLED": "0", "GOEXPERIMENT": "jsonv2"} {
		if got := asString(env[k]); got != want {
			t.Errorf("job %s: the tool is built with %s=%q, want %q", d.job, k, got, want)
		}
	}
}
