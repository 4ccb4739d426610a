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
	job  map[string]any
	name string
}

func loadWorkflow(t *testing.T) workflowDoc {
	t.Helper()
	raw := readFile(t, workflowPath)
	var top map[string]any
	if err := yaml.Unmarshal([]byte(raw), &top); err != nil {
		t.Fatalf("%s: %v", workflowPath, err)
	}
	jobs := asMap(top["jobs"])
	if len(jobs) != 1 {
		t.Fatalf("%s: want one job (one `dagger call` does everything), got %d", workflowPath, len(jobs))
	}
	var w workflowDoc
	for name, j := range jobs {
		w = workflowDoc{raw: raw, top: top, job: asMap(j), name: name}
	}
	return w
}

func (w workflowDoc) steps() []map[string]any {
	var out []map[string]any
	for _, s := range w.job["steps"].([]any) {
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

func (w workflowDoc) stepUsing(t *testing.T, action string) map[string]any {
	t.Helper()
	for _, s := range w.steps() {
		if strings.HasPrefix(asString(s["uses"]), action+"@") {
			return s
		}
	}
	t.Fatalf("%s: no step uses %s", workflowPath, action)
	return nil
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

	want := map[string]string{"contents": "read", "packages": "write", "id-token": "write", "security-events": "write"}
	perms := map[string]string{}
	for k, v := range asMap(w.top["permissions"]) {
		perms[k] = asString(v)
	}
	if fmt.Sprint(perms) != fmt.Sprint(want) {
		t.Errorf("permissions = %v, want exactly %v", perms, want)
	}
	if p, ok := w.job["permissions"]; ok {
		t.Errorf("job %s overrides the workflow's permissions with %v", w.name, p)
	}

	group := asString(asMap(w.top["concurrency"])["group"])
	if !strings.Contains(group, "github.ref") {
		t.Errorf("concurrency.group = %q: want one group per ref (github.ref)", group)
	}
}

var pinned = regexp.MustCompile(`^[^@\s]+@[0-9a-f]{40}$`)

// TestWorkflowActionsPinned: every non-local action is pinned by a full
// commit SHA with the release it is as a comment, and checkout fetches the
// whole history (the commit time and tags need it).
func TestWorkflowActionsPinned(t *testing.T) {
	w := loadWorkflow(t)
	usesLine := regexp.MustCompile(`(?m)^\s*(?:-\s*)?uses:\s*(\S+)(.*)$`)
	n := 0
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
	}
	if n == 0 {
		t.Fatal("no uses: lines found")
	}
	co := w.stepUsing(t, "actions/checkout")
	if d := asString(asMap(co["with"])["fetch-depth"]); d != "0" {
		t.Errorf("actions/checkout fetch-depth = %q, want 0", d)
	}
}

// TestWorkflowDaggerVersion: the CLI the workflow installs is the engine
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
	got := asString(asMap(w.stepUsing(t, "dagger/dagger-for-github")["with"])["version"])
	if strings.TrimPrefix(got, "v") != strings.TrimPrefix(mod.EngineVersion, "v") {
		t.Errorf("dagger/dagger-for-github version %q, dagger.json engineVersion %q", got, mod.EngineVersion)
	}
}

// TestWorkflowUploads: SARIF to code scanning even when the build failed,
// reports and the release record as artifacts for 90 days, the summary on
// the run page.
func TestWorkflowUploads(t *testing.T) {
	w := loadWorkflow(t)
	sarif := w.stepUsing(t, "github/codeql-action/upload-sarif")
	if cond := asString(sarif["if"]); !strings.Contains(cond, "always()") || !strings.Contains(cond, "dist/sarif") {
		t.Errorf("upload-sarif if: %q, want always() and a check that dist/sarif has files", cond)
	}
	if f := asString(asMap(sarif["with"])["sarif_file"]); f != "dist/sarif" {
		t.Errorf("upload-sarif sarif_file = %q, want dist/sarif (one file per service and platform)", f)
	}
	art := w.stepUsing(t, "actions/upload-artifact")
	with := asMap(art["with"])
	if r := asString(with["retention-days"]); r != "90" {
		t.Errorf("upload-artifact retention-days = %q, want 90", r)
	}
	paths := strings.Fields(asString(with["path"]))
	for _, p := range []string{"dist/sbom", "dist/scan", "dist/release.json", "dist/summary.md"} {
		if !slices.Contains(paths, p) {
			t.Errorf("upload-artifact path %v lacks %s", paths, p)
		}
	}
	if !strings.Contains(asString(art["if"]), "always()") {
		t.Errorf("upload-artifact should run when the gate failed too (if: always() ...), got %q", asString(art["if"]))
	}
	found := false
	for _, s := range w.steps() {
		if r := asString(s["run"]); strings.Contains(r, "dist/summary.md") && strings.Contains(r, `>> "$GITHUB_STEP_SUMMARY"`) {
			found = true
		}
	}
	if !found {
		t.Error("no step appends dist/summary.md to $GITHUB_STEP_SUMMARY")
	}
}

// TestWorkflowRegistryDefault runs the step that sets DOCKER_REGISTRY with
// bash: the default is ghcr.io/<owner>/bot-core, lower-cased, and a
// repository variable overrides it.
func TestWorkflowRegistryDefault(t *testing.T) {
	w := loadWorkflow(t)
	var step map[string]any
	for _, s := range w.steps() {
		if strings.Contains(asString(s["run"]), "DOCKER_REGISTRY=") && strings.Contains(asString(s["run"]), "$GITHUB_ENV") {
			step = s
		}
	}
	if step == nil {
		t.Fatal("no step writes DOCKER_REGISTRY to $GITHUB_ENV")
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
				t.Fatalf("env %s: %v", k, err)
			}
			cmd.Env = append(cmd.Env, k+"="+val)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%q: %v\n%s", stepName(step), err, out)
		}
		got, _ := os.ReadFile(envFile)
		if strings.TrimSpace(string(got)) != "DOCKER_REGISTRY="+tc.want {
			t.Errorf("vars.DOCKER_REGISTRY=%q, owner Acme-Corp: $GITHUB_ENV has %q, want DOCKER_REGISTRY=%s", tc.registryVar, got, tc.want)
		}
	}
}

// daggerStep is a step that runs `dagger call build-all`.
type daggerStep struct {
	step  map[string]any
	words []string // the dagger command, shell words
	text  string   // the command as written (continuations joined)
}

func (w workflowDoc) daggerSteps(t *testing.T) []daggerStep {
	t.Helper()
	var out []daggerStep
	for _, s := range w.steps() {
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
					found = append(found, daggerStep{step: s, words: c.words, text: l})
				}
			}
		}
		if len(found) != 1 {
			t.Fatalf("step %q runs %d dagger commands, want exactly one", stepName(s), len(found))
		}
		out = append(out, found...)
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

// TestWorkflowDaggerCall evaluates every step's if: for a push, a tag, a
// manual run and a pull request, and checks what each event runs: exactly
// one `dagger call build-all`; on pull requests with --build-only and
// without any secret (no registry password, no OIDC token, no secrets.*
// anywhere a pull-request step can see); otherwise publishing and signing.
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
		for _, scope := range []map[string]any{w.top, w.job} {
			if b, _ := yaml.Marshal(scope[s]); strings.Contains(string(b), "secrets.") {
				t.Errorf("a workflow- or job-level %s: references secrets, which pull-request steps would see: %s", s, b)
			}
		}
	}

	for _, ev := range []struct {
		name string
		ctx  exprContext
	}{
		{"push to main", exprContext{"github.event_name": "push", "github.ref": "refs/heads/main"}},
		{"tag v1.2.3", exprContext{"github.event_name": "push", "github.ref": "refs/tags/v1.2.3"}},
		{"workflow_dispatch", exprContext{"github.event_name": "workflow_dispatch", "github.ref": "refs/heads/main"}},
		{"pull_request", exprContext{"github.event_name": "pull_request", "github.ref": "refs/pull/7/merge"}},
	} {
		t.Run(ev.name, func(t *testing.T) {
			isPR := ev.ctx["github.event_name"] == "pull_request"
			var running []daggerStep
			for _, d := range steps {
				v, err := evalIf(asString(d.step["if"]), ev.ctx)
				if err != nil {
					t.Fatalf("step %q: if: %v", stepName(d.step), err)
				}
				if v == tUnknown {
					t.Fatalf("step %q: if: %q does not decide for this event", stepName(d.step), asString(d.step["if"]))
				}
				if v == tTrue {
					running = append(running, d)
				}
			}
			if len(running) != 1 {
				t.Fatalf("%d dagger steps run, want exactly one", len(running))
			}
			d := running[0]
			flags, chain := flagsOf(d)
			if d.words[1] != "call" || d.words[2] != "build-all" {
				t.Fatalf("step %q runs %v, want `dagger call build-all`", stepName(d.step), d.words[:3])
			}
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
				for _, s := range w.steps() {
					v, err := evalIf(asString(s["if"]), ev.ctx)
					if err != nil {
						t.Fatalf("step %q: if: %v", stepName(s), err)
					}
					if v == tFalse {
						continue
					}
					b, _ := yaml.Marshal(s)
					for _, bad := range []string{"secrets.", "--registry-password", "--oidc-", "ACTIONS_ID_TOKEN", "--cosign-key"} {
						if strings.Contains(string(b), bad) {
							t.Errorf("step %q can run on a pull request and contains %q", stepName(s), bad)
						}
					}
				}
				return
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
			t.Errorf("%s, step %q:\n  %s", workflowPath, stepName(d.step), strings.Join(problems, "\n  "))
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
