package repo_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// docCommand is one command shown in a fenced sh, bash, shell or console
// block of README.md or docs/*.md.
type docCommand struct {
	file   string
	line   int
	words  []string
	raw    string   // the logical line it came from
	output []string // console blocks: the output lines shown under it
	inner  bool     // it was inside $(...)
}

func (c docCommand) String() string {
	return fmt.Sprintf("%s:%d: `%s`", c.file, c.line, strings.Join(c.words, " "))
}

var fence = regexp.MustCompile("^\\s*(```+|~~~+)\\s*([A-Za-z0-9_-]*)")

func docFiles(t *testing.T) []string {
	dir := root(t)
	files, err := filepath.Glob(filepath.Join(dir, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"README.md"}
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		out = append(out, rel)
	}
	return out
}

// docCommands extracts every command of the shell blocks of the docs.
func docCommands(t *testing.T) []docCommand {
	t.Helper()
	var out []docCommand
	for _, file := range docFiles(t) {
		lines := strings.Split(readFile(t, file), "\n")
		for i := 0; i < len(lines); i++ {
			m := fence.FindStringSubmatch(lines[i])
			if m == nil {
				continue
			}
			marker, lang := m[1], m[2]
			start := i + 1
			j := start
			for j < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[j]), marker) {
				j++
			}
			block := lines[start:j]
			i = j
			switch lang {
			case "sh", "bash", "shell":
				logical, nums := joinContinuations(block, start+1)
				for k, l := range logical {
					out = append(out, parseDocLine(t, file, nums[k], l, nil)...)
				}
			case "console":
				for k := 0; k < len(block); k++ {
					if !strings.HasPrefix(block[k], "$ ") {
						continue
					}
					cmdLines := []string{strings.TrimPrefix(block[k], "$ ")}
					first := start + 1 + k
					for strings.HasSuffix(cmdLines[len(cmdLines)-1], "\\") && k+1 < len(block) {
						k++
						cmdLines = append(cmdLines, strings.TrimPrefix(block[k], "> "))
					}
					var output []string
					for k+1 < len(block) && !strings.HasPrefix(block[k+1], "$ ") {
						k++
						if s := strings.TrimSpace(block[k]); s != "" {
							output = append(output, s)
						}
					}
					logical, _ := joinContinuations(cmdLines, first)
					out = append(out, parseDocLine(t, file, first, logical[0], output)...)
				}
			}
		}
	}
	return out
}

func parseDocLine(t *testing.T, file string, line int, text string, output []string) []docCommand {
	cmds, err := splitShell(text)
	if err != nil {
		t.Errorf("%s:%d: %v", file, line, err)
		return nil
	}
	var out []docCommand
	for i, c := range cmds {
		dc := docCommand{file: file, line: line, words: stripAssignments(c.words), raw: text}
		if i == len(cmds)-1 {
			dc.output = output
		}
		if len(dc.words) > 0 {
			out = append(out, dc)
		}
		// Commands inside $(...) are documented commands too.
		for _, w := range c.words {
			for _, m := range regexp.MustCompile(`\$\(([^()]*)\)`).FindAllStringSubmatch(w, -1) {
				for _, in := range parseDocLine(t, file, line, m[1], nil) {
					in.inner = true
					out = append(out, in)
				}
			}
		}
	}
	return out
}

// docVariables are the environment variables the documented commands read
// ($VAR, ${VAR}, env:VAR), with where.
func docVariables(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, c := range docCommands(t) {
		for _, m := range shellVar.FindAllStringSubmatch(strings.Join(c.words, " "), -1) {
			out[m[1]+m[2]] = fmt.Sprintf("%s:%d", c.file, c.line)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Where each documented command runs

type coverage struct {
	prefix []string
	where  string
	check  func(t *testing.T, c docCommand, b *botcoreBin)
}

// coverageTable maps command prefixes to where they are exercised. A
// command of the docs that matches no prefix fails the test.
func coverageTable() []coverage {
	return []coverage{
		{[]string{"hack/test.sh"}, ".ci/run runs it", func(t *testing.T, c docCommand, _ *botcoreBin) {
			mustExecutable(t, c, "hack/test.sh")
			if !strings.Contains(readFile(t, ".ci/run"), "\nhack/test.sh\n") {
				t.Errorf("%s: .ci/run does not run hack/test.sh", c)
			}
		}},
		{[]string{"hack/engine/up.sh"}, "hack/test.sh runs it before the tests (test/e2e drive its engine)", func(t *testing.T, c docCommand, _ *botcoreBin) {
			mustExecutable(t, c, "hack/engine/up.sh")
			if !strings.Contains(readFile(t, "hack/test.sh"), "hack/engine/up.sh") {
				t.Errorf("%s: hack/test.sh does not run hack/engine/up.sh", c)
			}
		}},
		{[]string{"hack/engine/down.sh"}, "exists (stops what up.sh started)", func(t *testing.T, c docCommand, _ *botcoreBin) {
			mustExecutable(t, c, "hack/engine/down.sh")
		}},
		{[]string{"hack/bench/build-all.sh"}, "exists (prints benchmark figures)", func(t *testing.T, c docCommand, _ *botcoreBin) {
			mustExecutable(t, c, "hack/bench/build-all.sh")
		}},
		{[]string{"dagger"}, "flags checked against ci/*.go; build-all runs in test/e2e/pipeline_test.go (TestPipeline)", checkDaggerDoc},
		{[]string{"go", "build"}, "this test builds the same package", func(t *testing.T, c docCommand, _ *botcoreBin) {
			pkg := c.words[len(c.words)-1]
			if pkg != "./cmd/botcore" {
				t.Errorf("%s: only `go build ... ./cmd/botcore` is documented", c)
			}
		}},
		{[]string{"go", "run", "./test/trivydbtest/write-db"}, "run here", func(t *testing.T, c docCommand, _ *botcoreBin) {
			dir := t.TempDir()
			cmd := exec.Command("go", "run", "./test/trivydbtest/write-db", dir)
			cmd.Dir = root(t)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", c, err, out)
			}
			// The layout --trivy-db takes: trivy.db and metadata.json side by side.
			for _, f := range []string{"trivy.db", "metadata.json"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("%s wrote no %s: %v", c, f, err)
				}
			}
		}},
		{[]string{"go", "run", "./cmd/botcore"}, "run or checked against --help here", func(t *testing.T, c docCommand, b *botcoreBin) {
			checkBotcore(t, c, c.words[3:], b)
		}},
		{[]string{"botcore"}, "run or checked against --help here", func(t *testing.T, c docCommand, b *botcoreBin) {
			checkBotcore(t, c, c.words[1:], b)
		}},
		{[]string{"docker", "compose"}, "docker-compose.prod.yml is loaded and checked by TestComposeProd", func(t *testing.T, c docCommand, _ *botcoreBin) {
			i := slices.Index(c.words, "-f")
			if i < 0 || i+1 >= len(c.words) || c.words[i+1] != composePath {
				t.Errorf("%s: docker compose without -f %s", c, composePath)
			}
		}},
		// Shell builtins: nothing to check.
		{[]string{"export"}, "shell builtin", nil},
		{[]string{"."}, "shell builtin", nil},
		{[]string{"echo"}, "shell builtin", nil},
		// Vendor CLIs that make registry tokens (docs/registries.md) and git.
		{[]string{"aws", "ecr", "get-login-password"}, "AWS CLI, not installed here", nil},
		{[]string{"gcloud", "auth", "print-access-token"}, "Google Cloud CLI, not installed here", nil},
		{[]string{"git", "log", "-1", "--format=%ct"}, "git: the commit time, as the workflow computes it", nil},
		{[]string{"git", "rev-parse", "HEAD"}, "git: the commit", nil},
	}
}

func mustExecutable(t *testing.T, c docCommand, rel string) {
	st, err := os.Stat(filepath.Join(root(t), rel))
	if err != nil || st.Mode()&0o111 == 0 {
		t.Errorf("%s: %s is not an executable file (%v)", c, rel, err)
	}
}

func checkDaggerDoc(t *testing.T, c docCommand, _ *botcoreBin) {
	fn, problems := checkDaggerCall(loadModule(t), c.words)
	for _, p := range problems {
		t.Errorf("%s:\n  %s", c, p)
	}
	if fn == "build-all" && !strings.Contains(readFile(t, "test/e2e/pipeline_test.go"), `"build-all"`) {
		t.Errorf("%s: test/e2e/pipeline_test.go no longer calls build-all", c)
	}
}

// ---------------------------------------------------------------------------
// The botcore binary

type botcoreBin struct {
	path     string
	commands []string // command paths from --help, e.g. "registry detect"
}

var (
	botcoreDir      string // removed by TestMain
	botcoreOnce     sync.Once
	botcoreVal      *botcoreBin
	botcoreErr      error
	botcoreReported bool
)

// buildBotcore builds ./cmd/botcore once per test binary (slow the first
// time: it links the registry, Trivy, Syft and cosign libraries).
func buildBotcore(t *testing.T) *botcoreBin {
	t.Helper()
	botcoreOnce.Do(func() {
		dir, err := os.MkdirTemp("", "botcore-doc-test-")
		if err != nil {
			botcoreErr = err
			return
		}
		botcoreDir = dir
		bin := filepath.Join(dir, "botcore")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/botcore")
		cmd.Dir = root(t)
		cmd.Env = append(os.Environ(), "GOEXPERIMENT=jsonv2")
		if out, err := cmd.CombinedOutput(); err != nil {
			botcoreErr = fmt.Errorf("go build ./cmd/botcore: %v\n%s", err, out)
			return
		}
		help, _, code := runBotcore(bin, "--help")
		if code != 0 {
			botcoreErr = fmt.Errorf("botcore --help exited %d", code)
			return
		}
		b := &botcoreBin{path: bin}
		inCommands := false
		for _, l := range strings.Split(help, "\n") {
			if strings.HasPrefix(l, "Commands:") {
				inCommands = true
				continue
			}
			if inCommands && strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "   ") {
				if name, _, ok := strings.Cut(strings.TrimSpace(l), "  "); ok {
					b.commands = append(b.commands, strings.TrimSpace(name))
				}
			}
		}
		if len(b.commands) == 0 {
			botcoreErr = fmt.Errorf("no commands in botcore --help:\n%s", help)
			return
		}
		botcoreVal = b
	})
	if botcoreErr != nil {
		if botcoreReported {
			t.Fatal("./cmd/botcore does not build: see the first failing botcore command")
		}
		botcoreReported = true
		t.Fatal(botcoreErr)
	}
	return botcoreVal
}

func TestMain(m *testing.M) {
	code := m.Run()
	if botcoreDir != "" {
		os.RemoveAll(botcoreDir)
	}
	os.Exit(code)
}

// runBotcore runs the binary with a clean environment: no credentials, no
// registry, a throwaway HOME.
func runBotcore(bin string, args ...string) (stdout, stderr string, code int) {
	home, _ := os.MkdirTemp("", "botcore-home-")
	defer os.RemoveAll(home)
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home, "DOCKER_CONFIG=" + home}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code == 0 {
		code = -1
	}
	return o.String(), e.String(), code
}

// runnable are botcore command paths the doc test really runs: they need
// no registry, Docker engine or network.
var runnable = []string{"registry detect"}

// checkBotcore runs a documented botcore command when it needs nothing
// outside this machine (registry detect, --help); otherwise it checks that
// the command exists and that every flag shown is in its --help.
func checkBotcore(t *testing.T, c docCommand, args []string, b *botcoreBin) {
	path, rest := commandPath(args, b.commands)
	help := slices.ContainsFunc(args, func(a string) bool { return a == "--help" || a == "-h" })
	if path == "" && !help && len(args) > 0 {
		t.Errorf("%s: %q is not a botcore command (botcore --help lists: %s)", c, args[0], strings.Join(b.commands, ", "))
		return
	}
	if help || slices.Contains(runnable, path) {
		stdout, stderr, code := runBotcore(b.path, args...)
		if code != 0 {
			t.Errorf("%s: exited %d\n%s%s", c, code, stdout, stderr)
			return
		}
		if strings.TrimSpace(stdout) == "" {
			t.Errorf("%s: printed nothing", c)
		}
		got := map[string]bool{}
		for _, l := range strings.Split(stdout, "\n") {
			got[strings.Join(strings.Fields(l), " ")] = true
		}
		for _, want := range c.output {
			if !got[strings.Join(strings.Fields(want), " ")] {
				t.Errorf("%s: the docs show the output line %q, which the command does not print:\n%s", c, want, stdout)
			}
		}
		return
	}
	helpArgs := append(strings.Fields(path), "--help")
	out, stderr, code := runBotcore(b.path, helpArgs...)
	if code != 0 {
		t.Errorf("%s: `botcore %s` exited %d: %s", c, strings.Join(helpArgs, " "), code, strings.TrimSpace(stderr))
		return
	}
	for _, w := range rest {
		if !strings.HasPrefix(w, "-") || w == "-" {
			continue
		}
		name, _ := flagName(w)
		want := "--" + name
		if !strings.HasPrefix(w, "--") {
			want = "-" + name + ","
		}
		if !strings.Contains(out, want) {
			t.Errorf("%s: `botcore %s` has no flag %s", c, path, strings.TrimSuffix(want, ","))
		}
	}
	if len(c.output) > 0 {
		t.Errorf("%s: shows output, but the doc test cannot run it here (it needs a registry or Docker): show output only for commands it runs (%s, --help)", c, strings.Join(runnable, ", "))
	}
}

// globalValueFlags are botcore's global flags that take a value.
var globalValueFlags = []string{"--registry", "--connect-to"}

// commandPath finds the longest known command path among the leading
// non-flag words (global flags may come first) and returns the other words.
func commandPath(args, commands []string) (string, []string) {
	var words []int
	for i := 0; i < len(args); i++ {
		if slices.Contains(globalValueFlags, args[i]) {
			i++ // its value
			continue
		}
		if !strings.HasPrefix(args[i], "-") {
			words = append(words, i)
		}
	}
	best, bestN := "", 0
	for n := 1; n <= len(words) && n <= 3; n++ {
		var parts []string
		for _, i := range words[:n] {
			parts = append(parts, args[i])
		}
		if p := strings.Join(parts, " "); slices.Contains(commands, p) {
			best, bestN = p, n
		}
	}
	if best == "" {
		return "", args
	}
	var rest []string
	for i, a := range args {
		if !slices.Contains(words[:bestN], i) {
			rest = append(rest, a)
		}
	}
	return best, rest
}

// TestDocCommands: every command in a shell block of README.md and
// docs/*.md is covered by the table above, and its check passes. botcore
// commands that need no registry are run; the others must exist with the
// flags shown; dagger calls must match the module's functions and
// parameters in ci/*.go.
func TestDocCommands(t *testing.T) {
	cmds := docCommands(t)
	if len(cmds) == 0 {
		t.Fatal("no commands found in the docs")
	}
	var readme []string
	for _, c := range cmds {
		if c.file == "README.md" {
			readme = append(readme, strings.Join(c.words, " "))
		}
	}
	for _, want := range []string{"hack/engine/up.sh", "dagger call build-all --version v1.0.0 export --path dist", "hack/test.sh"} {
		if !slices.Contains(readme, want) {
			t.Errorf("README.md's quick start lost `%s` (it has %q)", want, readme)
		}
	}

	table := coverageTable()
	var b *botcoreBin
	for _, c := range cmds {
		var cov *coverage
		for i := range table {
			p := table[i].prefix
			if len(c.words) >= len(p) && slices.Equal(c.words[:len(p)], p) {
				cov = &table[i]
				break
			}
		}
		name := fmt.Sprintf("%s:%d:%s", c.file, c.line, strings.Join(c.words, "_"))
		t.Run(name, func(t *testing.T) {
			if cov == nil {
				t.Fatalf("%s is not covered: add its prefix to coverageTable in test/repo/docs_test.go with where it runs, or drop it from the docs", c)
			}
			if cov.check == nil {
				return
			}
			if cov.prefix[0] == "botcore" || cov.prefix[0] == "go" && cov.prefix[1] == "run" {
				if b == nil {
					b = buildBotcore(t)
				}
			}
			cov.check(t, c, b)
		})
	}
}

// TestDocCoverageTable: the table's own entries stay honest.
func TestDocCoverageTable(t *testing.T) {
	used := map[string]bool{}
	cmds := docCommands(t)
	for _, cov := range coverageTable() {
		for _, c := range cmds {
			if len(c.words) >= len(cov.prefix) && slices.Equal(c.words[:len(cov.prefix)], cov.prefix) {
				used[strings.Join(cov.prefix, " ")] = true
			}
		}
	}
	for _, cov := range coverageTable() {
		if p := strings.Join(cov.prefix, " "); !used[p] && !strings.HasPrefix(p, "hack/") {
			t.Errorf("coverageTable has %q (%s), which no doc command uses: drop it", p, cov.where)
		}
	}
	if _, rest := commandPath([]string{"--registry", "x", "registry", "login", "-u", "me", "--password-stdin"}, []string{"registry detect", "registry login"}); !slices.Equal(rest, []string{"--registry", "x", "-u", "me", "--password-stdin"}) {
		t.Errorf("commandPath rest = %v", rest)
	}
}
