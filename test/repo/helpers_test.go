// Package repo_test holds the repository's static checks: the release
// workflow, docker-compose.prod.yml, .env.example and the commands shown in
// the documentation. They need no engine, no registry and no network.
package repo_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"
)

// root is the repository root (the directory of the root go.mod).
func root(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !strings.Contains(string(b), "module github.com/bot-core/delivery\n") {
		t.Fatalf("%s is not the repository root (go.mod: %v)", dir, err)
	}
	return dir
}

func readFile(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// Shell words

// shellCommand is one simple command of a shell line: its words with quotes
// removed (a ${...} or $(...) stays one word, as written).
type shellCommand struct {
	words []string
	raw   string // the command's source text, for messages
}

// splitShell splits a shell line (backslash-newlines already joined) into
// simple commands at &&, ||, |, ; and & and drops comments and redirections.
// It is a reader for documentation and workflow snippets, not a shell.
func splitShell(line string) ([]shellCommand, error) {
	var (
		cmds  []shellCommand
		words []string
		cur   strings.Builder
		inW   bool
		start int
	)
	endWord := func() {
		if inW {
			words = append(words, cur.String())
			cur.Reset()
			inW = false
		}
	}
	endCmd := func(at int) {
		endWord()
		words = dropRedirections(words)
		if len(words) > 0 {
			cmds = append(cmds, shellCommand{words: words, raw: strings.TrimSpace(line[start:at])})
		}
		words = nil
	}
	rs := []rune(line)
	pos := func(i int) int { return len(string(rs[:i])) }
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == '\\' && i+1 < len(rs):
			cur.WriteRune(rs[i+1])
			inW = true
			i++
		case c == '\'':
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unterminated ' in %q", line)
			}
			cur.WriteString(string(rs[i+1 : j]))
			inW = true
			i = j
		case c == '"':
			j := i + 1
			for j < len(rs) && rs[j] != '"' {
				if rs[j] == '\\' && j+1 < len(rs) {
					j++
				}
				j++
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unterminated \" in %q", line)
			}
			cur.WriteString(strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`).Replace(string(rs[i+1 : j])))
			inW = true
			i = j
		case c == '$' && i+1 < len(rs) && (rs[i+1] == '{' || rs[i+1] == '('):
			// Keep ${...} and $(...) whole, nesting included.
			open, closeR := rs[i+1], map[rune]rune{'{': '}', '(': ')'}[rs[i+1]]
			depth, j := 0, i+1
			for ; j < len(rs); j++ {
				if rs[j] == open {
					depth++
				} else if rs[j] == closeR {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unterminated $%c in %q", open, line)
			}
			cur.WriteString(string(rs[i : j+1]))
			inW = true
			i = j
		case c == '#' && !inW:
			endCmd(pos(i))
			return cmds, nil
		case c == '&' || c == '|' || c == ';':
			if c == '&' && (inW && strings.HasSuffix(cur.String(), ">") || i > 0 && rs[i-1] == '>') {
				cur.WriteRune(c) // 2>&1
				inW = true
				continue
			}
			endCmd(pos(i))
			if i+1 < len(rs) && (rs[i+1] == c) {
				i++
			}
			start = pos(i + 1)
		case unicode.IsSpace(c):
			endWord()
		default:
			cur.WriteRune(c)
			inW = true
		}
	}
	endCmd(len(line))
	return cmds, nil
}

// dropRedirections removes >file, >> file, 2>&1, <file from words.
func dropRedirections(words []string) []string {
	var out []string
	for i := 0; i < len(words); i++ {
		w := strings.TrimLeft(words[i], "0123456789")
		if strings.HasPrefix(w, ">") || strings.HasPrefix(w, "<") {
			if w == ">" || w == ">>" || w == "<" {
				i++ // the target is the next word
			}
			continue
		}
		out = append(out, words[i])
	}
	return out
}

// stripAssignments drops leading VAR=value words (env prefixes).
func stripAssignments(words []string) []string {
	for len(words) > 0 {
		name, _, ok := strings.Cut(words[0], "=")
		if !ok || name == "" || strings.ContainsFunc(name, func(r rune) bool {
			return !(r == '_' || unicode.IsUpper(r) || unicode.IsDigit(r) || unicode.IsLower(r))
		}) {
			break
		}
		words = words[1:]
	}
	return words
}

// joinContinuations joins lines ending in a backslash with the next one,
// returning each logical line with the 1-based number of its first line.
func joinContinuations(lines []string, firstLine int) (out []string, nums []int) {
	var b strings.Builder
	startNum := -1
	for i, l := range lines {
		if startNum < 0 {
			startNum = firstLine + i
		}
		if strings.HasSuffix(l, "\\") {
			b.WriteString(strings.TrimSuffix(l, "\\"))
			b.WriteString(" ")
			continue
		}
		b.WriteString(l)
		out = append(out, b.String())
		nums = append(nums, startNum)
		b.Reset()
		startNum = -1
	}
	if b.Len() > 0 {
		out = append(out, b.String())
		nums = append(nums, startNum)
	}
	return out, nums
}

// ---------------------------------------------------------------------------
// The Dagger module's functions, read from ci/*.go

type daggerParam struct {
	flag   string // kebab-case, as `dagger call` spells it
	isBool bool
}

type daggerFunc struct {
	goName string
	name   string // kebab-case
	params map[string]daggerParam
}

type daggerModule struct {
	constructor daggerFunc
	funcs       map[string]daggerFunc
}

var (
	moduleOnce sync.Once
	moduleVal  daggerModule
	moduleErr  error
)

// loadModule parses ci/*.go (not the generated dagger.gen.go) and returns
// the constructor New and every exported method of *BotCore with their
// parameters as `dagger call` flags.
func loadModule(t testing.TB) daggerModule {
	t.Helper()
	dir := filepath.Join(root(t), "ci")
	moduleOnce.Do(func() {
		moduleVal, moduleErr = parseModule(dir)
	})
	if moduleErr != nil {
		t.Fatalf("parse ci/*.go: %v", moduleErr)
	}
	return moduleVal
}

func parseModule(dir string) (daggerModule, error) {
	m := daggerModule{funcs: map[string]daggerFunc{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return m, err
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || filepath.Base(f) == "dagger.gen.go" {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			return m, err
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || !fn.Name.IsExported() {
				continue
			}
			df := daggerFunc{goName: fn.Name.Name, name: kebab(fn.Name.Name), params: map[string]daggerParam{}}
			for _, field := range fn.Type.Params.List {
				if sel, ok := field.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Context" {
					continue
				}
				id, isIdent := field.Type.(*ast.Ident)
				for _, n := range field.Names {
					p := daggerParam{flag: kebab(n.Name), isBool: isIdent && id.Name == "bool"}
					df.params[p.flag] = p
				}
			}
			switch {
			case fn.Recv == nil && fn.Name.Name == "New":
				m.constructor = df
			case fn.Recv != nil && recvIs(fn.Recv, "BotCore"):
				m.funcs[df.name] = df
			}
		}
	}
	if m.constructor.goName == "" {
		return m, fmt.Errorf("no func New in %s", dir)
	}
	return m, nil
}

func recvIs(recv *ast.FieldList, name string) bool {
	if len(recv.List) != 1 {
		return false
	}
	t := recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	id, ok := t.(*ast.Ident)
	return ok && id.Name == name
}

// kebab turns a Go identifier into Dagger's CLI spelling: BuildAll ->
// build-all, gitSHA -> git-sha, oidcRequestUrl -> oidc-request-url.
func kebab(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			nextLower := i > 0 && i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1])
			if prevLower || nextLower {
				b.WriteByte('-')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Core API functions a `dagger call` chain may end with, and their flags
// (bool flags marked true).
var chainFuncs = map[string]map[string]bool{
	"export":  {"path": false, "wipe": false, "allow-parent-dir-path": true},
	"entries": {},
	"stdout":  {},
	"sync":    {},
}

// daggerGlobalFlags are flags of the dagger CLI itself (value-taking ones false).
var daggerGlobalFlags = map[string]bool{"progress": false, "m": false, "mod": false, "silent": true, "s": true, "quiet": true, "q": true, "debug": true, "d": true}

// checkDaggerCall checks a `dagger ...` command against the module: the
// function exists and every flag is a parameter of New (before the
// function), of the function, or of the chained core function. It returns
// one message per problem and the function called.
func checkDaggerCall(m daggerModule, words []string) (fn string, problems []string) {
	if len(words) == 0 || words[0] != "dagger" {
		return "", []string{"not a dagger command"}
	}
	i := 1
	// dagger's own flags, then the verb.
	for i < len(words) && strings.HasPrefix(words[i], "-") {
		name, hasVal := flagName(words[i])
		isBool, ok := daggerGlobalFlags[name]
		if !ok {
			return "", []string{fmt.Sprintf("%s is not a flag of the dagger CLI this repository uses", words[i])}
		}
		i++
		if !isBool && !hasVal {
			i++
		}
	}
	if i >= len(words) {
		return "", []string{"no dagger verb"}
	}
	switch words[i] {
	case "functions", "version":
		return words[i], nil
	case "call":
	default:
		return "", []string{fmt.Sprintf("dagger %s: only `dagger call`, `dagger functions` and `dagger version` are documented", words[i])}
	}
	i++
	consume := func(params map[string]daggerParam, owner string) {
		for i < len(words) && strings.HasPrefix(words[i], "-") {
			w := words[i]
			name, hasVal := flagName(w)
			p, ok := params[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("--%s is not a parameter of %s in ci/*.go (it has: %s)", name, owner, flagList(params)))
			}
			i++
			if ok && p.isBool || hasVal {
				continue
			}
			i++ // the value
		}
	}
	consume(m.constructor.params, "New (the module's constructor)")
	if i >= len(words) {
		return "", append(problems, "`dagger call` without a function")
	}
	f, ok := m.funcs[words[i]]
	if !ok {
		names := slices.Sorted(mapKeys(m.funcs))
		return words[i], append(problems, fmt.Sprintf("%s is not a function of the module (ci/*.go has: %s)", words[i], strings.Join(names, ", ")))
	}
	fn = f.name
	i++
	consume(f.params, f.goName)
	for i < len(words) {
		chain, ok := chainFuncs[words[i]]
		if !ok {
			problems = append(problems, fmt.Sprintf("%q after %s is not a core function this repository's docs use (%s)", words[i], fn, strings.Join(slices.Sorted(mapKeys(chainFuncs)), ", ")))
			return fn, problems
		}
		name := words[i]
		params := map[string]daggerParam{}
		for k, b := range chain {
			params[k] = daggerParam{flag: k, isBool: b}
		}
		i++
		consume(params, "the core function "+name)
	}
	return fn, problems
}

// flagName returns "name" for --name, --name=v and -n, and whether the
// value was given inline.
func flagName(w string) (string, bool) {
	w = strings.TrimLeft(w, "-")
	name, _, hasVal := strings.Cut(w, "=")
	return name, hasVal
}

func flagList(params map[string]daggerParam) string {
	var out []string
	for _, k := range slices.Sorted(mapKeys(params)) {
		out = append(out, "--"+k)
	}
	if len(out) == 0 {
		return "no parameters"
	}
	return strings.Join(out, " ")
}

func mapKeys[M ~map[K]V, K comparable, V any](m M) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Small helpers for decoded YAML

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	default:
		return fmt.Sprint(x)
	}
}

func sameStrings(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return reflect.DeepEqual(a, b)
}
