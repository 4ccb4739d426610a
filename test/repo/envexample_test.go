package repo_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// notForEnvFile are variables readers read that an operator never puts in
// .env: the system's own, and what the GitHub Actions runner provides.
var notForEnvFile = map[string]string{
	"HOME":                           "system",
	"PATH":                           "system",
	"XDG_CACHE_HOME":                 "system (XDG base directories)",
	"GITHUB_REF":                     "set by the GitHub Actions runner",
	"GITHUB_SHA":                     "set by the GitHub Actions runner",
	"GITHUB_SERVER_URL":              "set by the GitHub Actions runner",
	"GITHUB_REPOSITORY":              "set by the GitHub Actions runner",
	"GITHUB_ENV":                     "set by the GitHub Actions runner",
	"GITHUB_STEP_SUMMARY":            "set by the GitHub Actions runner",
	"RUNNER_TEMP":                    "set by the GitHub Actions runner",
	"ACTIONS_ID_TOKEN_REQUEST_URL":   "set by the GitHub Actions runner (permissions: id-token: write)",
	"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "set by the GitHub Actions runner (permissions: id-token: write)",
}

// sdkReads are variables read by a library on botcore's behalf, not by a
// literal in our code; each names the file whose call makes the library read
// them, and the call, so the claim stays checked.
var sdkReads = map[string][2]string{
	"AWS_REGION":   {"cmd/botcore/internal/credentials/cloud.go", "awsconfig.LoadDefaultConfig"},
	"AWS_ROLE_ARN": {"cmd/botcore/internal/credentials/cloud.go", "awsconfig.LoadDefaultConfig"},
}

var (
	envName      = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	composeVar   = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
	shellVar     = regexp.MustCompile(`\$\{?([A-Z_][A-Z0-9_]*)|\benv:([A-Z_][A-Z0-9_]*)`)
	ctxVar       = regexp.MustCompile(`\b(?:vars|secrets)\.([A-Za-z_][A-Za-z0-9_]*)`)
	envExampleKV = regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=(.*)$`)
)

// cliReads are the variables the botcore CLI reads, found in the Go source
// of every package of this repository that ./cmd/botcore is built from (test
// files and comments aside): envvar:"X" flag tags, env("X") / os.Getenv("X")
// / os.LookupEnv("X") calls, and EnvX = "X" constants.
func cliReads(t *testing.T) map[string]string {
	t.Helper()
	dir := root(t)
	cmd := exec.Command("go", "list", "-e", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./cmd/botcore")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOEXPERIMENT=jsonv2", "GOFLAGS=-mod=readonly")
	listed, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/botcore: %v", err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, pkgDir := range strings.Fields(string(listed)) {
		rel, err := filepath.Rel(dir, pkgDir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // not this repository's code
		}
		files, _ := filepath.Glob(filepath.Join(pkgDir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			relFile, _ := filepath.Rel(dir, f)
			for _, name := range envNamesIn(file) {
				out[name] = relFile
			}
		}
	}
	return out
}

func envNamesIn(file *ast.File) []string {
	var names []string
	lit := func(e ast.Expr) (string, bool) {
		b, ok := e.(*ast.BasicLit)
		if !ok || b.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(b.Value)
		return s, err == nil && envName.MatchString(s)
	}
	ast.Inspect(file, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.Field:
			if x.Tag != nil {
				if tag, err := strconv.Unquote(x.Tag.Value); err == nil {
					if v := reflect.StructTag(tag).Get("envvar"); v != "" {
						names = append(names, v)
					}
				}
			}
		case *ast.CallExpr:
			var fn string
			switch f := x.Fun.(type) {
			case *ast.Ident:
				fn = f.Name
			case *ast.SelectorExpr:
				fn = f.Sel.Name
			}
			if (fn == "env" || fn == "Getenv" || fn == "LookupEnv") && len(x.Args) == 1 {
				if s, ok := lit(x.Args[0]); ok {
					names = append(names, s)
				}
			}
		case *ast.ValueSpec:
			for i, id := range x.Names {
				if strings.HasPrefix(id.Name, "Env") && i < len(x.Values) {
					if s, ok := lit(x.Values[i]); ok {
						names = append(names, s)
					}
				}
			}
		}
		return true
	})
	return names
}

// composeReads are the ${VAR} names docker-compose.prod.yml interpolates.
func composeReads(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(readFile(t, composePath), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, m := range composeVar.FindAllStringSubmatch(strings.ReplaceAll(line, "$$", ""), -1) {
			out[m[1]] = composePath
		}
	}
	return out
}

// workflowReads are the variables the workflow's dagger calls read ($VAR,
// env:VAR) and the repository variables and secrets it takes (vars.X,
// secrets.X), which are the same names on a laptop.
func workflowReads(t *testing.T) map[string]string {
	w := loadWorkflow(t)
	out := map[string]string{}
	for _, d := range w.daggerSteps(t) {
		for _, m := range shellVar.FindAllStringSubmatch(d.text, -1) {
			out[m[1]+m[2]] = workflowPath + " (dagger call)"
		}
	}
	for _, m := range ctxVar.FindAllStringSubmatch(w.raw, -1) {
		out[m[1]] = workflowPath + " (vars/secrets)"
	}
	return out
}

type envEntry struct {
	name, value string
	line        int
	comment     bool
}

func readEnvExample(t *testing.T) []envEntry {
	var out []envEntry
	lines := strings.Split(readFile(t, ".env.example"), "\n")
	for i, l := range lines {
		m := envExampleKV.FindStringSubmatch(l)
		if m == nil {
			if s := strings.TrimSpace(l); s != "" && !strings.HasPrefix(s, "#") {
				t.Errorf(".env.example:%d: %q is neither a comment nor NAME=value", i+1, l)
			}
			continue
		}
		hasComment := false
		for j := i - 1; j >= 0 && strings.TrimSpace(lines[j]) != ""; j-- {
			if strings.HasPrefix(strings.TrimSpace(lines[j]), "#") {
				hasComment = true
				break
			}
		}
		out = append(out, envEntry{name: m[1], value: m[2], line: i + 1, comment: hasComment})
	}
	return out
}

// TestEnvExample: .env.example documents every variable compose, the
// workflow's dagger call, the botcore CLI and the commands shown in the docs
// read, each under a comment, with no value that looks like a secret, and
// lists nothing nobody reads.
func TestEnvExample(t *testing.T) {
	entries := readEnvExample(t)
	listed := map[string]bool{}
	for _, e := range entries {
		if listed[e.name] {
			t.Errorf(".env.example:%d: %s is listed twice", e.line, e.name)
		}
		listed[e.name] = true
		if !e.comment {
			t.Errorf(".env.example:%d: %s has no comment above it (its group's comment counts)", e.line, e.name)
		}
		if e.value != "" && !regexp.MustCompile(`^[0-9]{1,5}$`).MatchString(e.value) {
			t.Errorf(".env.example:%d: %s=%s: only empty values and port numbers belong in the example", e.line, e.name, e.value)
		}
	}

	readers := map[string]string{}
	for _, src := range []map[string]string{cliReads(t), composeReads(t), workflowReads(t), docVariables(t)} {
		for k, v := range src {
			readers[k] = v
		}
	}
	for _, k := range []string{"DOCKER_REGISTRY", "VERSION", "DOCKER_PASSWORD", "AWS_ACCESS_KEY_ID", "RUST_CORE_ENGINE_PORT"} {
		if readers[k] == "" {
			t.Fatalf("the reader scan found no %s: the scan is broken", k)
		}
	}

	var missing []string
	for k, where := range readers {
		if !listed[k] && notForEnvFile[k] == "" {
			missing = append(missing, k+" (read by "+where+")")
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf(".env.example lacks %s", m)
	}

	for k, sdk := range sdkReads {
		if !strings.Contains(readFile(t, sdk[0]), sdk[1]) {
			t.Errorf("%s is documented as read by the SDK through %s in %s, which no longer calls it", k, sdk[1], sdk[0])
		}
	}
	var unread []string
	for _, e := range entries {
		if readers[e.name] == "" && sdkReads[e.name][0] == "" {
			unread = append(unread, e.name)
		}
	}
	if len(unread) > 0 {
		t.Errorf(".env.example lists variables nothing reads (not the CLI, compose, the workflow or a documented command): %s", strings.Join(unread, ", "))
	}
}
