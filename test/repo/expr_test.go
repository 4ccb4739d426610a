package repo_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// exprContext maps lower-case dotted names (github.event_name) to values;
// a name it lacks is unknown.
type exprContext map[string]string

type exprVal struct {
	known bool
	s     string
	b     *bool
	null  bool
	// truthy is the truth of an unknown value that is known anyway (an
	// unknown || true): tUnknown unless set.
	truthy tri
}

var unknown = exprVal{truthy: tUnknown}

func boolVal(b bool) exprVal { return exprVal{known: true, b: &b} }

func (v exprVal) truth() tri {
	switch {
	case !v.known:
		return v.truthy
	case v.b != nil:
		if *v.b {
			return tTrue
		}
		return tFalse
	case v.null, v.s == "", v.s == "0":
		return tFalse
	}
	return tTrue
}

// unknownWithTruth is a value this test cannot know whose truth it can.
func unknownWithTruth(t tri) exprVal { return exprVal{truthy: t} }

// evalIf evaluates an if: condition; an empty one is success(), true here.
func evalIf(cond string, ctx exprContext) (tri, error) {
	cond = strings.TrimSpace(cond)
	if cond == "" {
		return tTrue, nil
	}
	if strings.HasPrefix(cond, "${{") && strings.HasSuffix(cond, "}}") {
		cond = strings.TrimSuffix(strings.TrimPrefix(cond, "${{"), "}}")
	}
	v, err := evalExpr(cond, ctx)
	return v.truth(), err
}

// substitute replaces every ${{ expr }} in s by its value; an unknown value
// is an error.
func substitute(s string, ctx exprContext) (string, error) {
	var err error
	out := regexp.MustCompile(`\$\{\{(.*?)\}\}`).ReplaceAllStringFunc(s, func(m string) string {
		v, e := evalExpr(m[3:len(m)-2], ctx)
		if e == nil && !v.known {
			e = fmt.Errorf("%s is unknown in this test", m)
		}
		if e != nil {
			err = e
			return ""
		}
		if v.b != nil {
			return strconv.FormatBool(*v.b)
		}
		return v.s
	})
	return out, err
}

// evalExpr parses and evaluates a GitHub Actions expression: literals,
// dotted context names, ! == != && || ( ) and the functions always(),
// success(), failure(), cancelled(), hashFiles(), contains(), startsWith()
// and endsWith().
func evalExpr(src string, ctx exprContext) (exprVal, error) {
	toks, err := lexExpr(src)
	if err != nil {
		return unknown, err
	}
	p := &exprParser{toks: toks, ctx: ctx, src: src}
	v, err := p.or()
	if err == nil && p.pos < len(p.toks) {
		err = fmt.Errorf("%q: unexpected %q", src, p.toks[p.pos])
	}
	return v, err
}

func lexExpr(src string) ([]string, error) {
	var toks []string
	rs := []rune(src)
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(rs); j++ {
				if rs[j] == '\'' {
					if j+1 < len(rs) && rs[j+1] == '\'' {
						b.WriteRune('\'')
						j++
						continue
					}
					break
				}
				b.WriteRune(rs[j])
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("%q: unterminated string", src)
			}
			toks = append(toks, "'"+b.String())
			i = j + 1
		case unicode.IsLetter(c) || c == '_':
			j := i
			for j < len(rs) && (unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j]) || strings.ContainsRune("_-.*", rs[j])) {
				j++
			}
			toks = append(toks, string(rs[i:j]))
			i = j
		case unicode.IsDigit(c):
			j := i
			for j < len(rs) && (unicode.IsDigit(rs[j]) || rs[j] == '.') {
				j++
			}
			toks = append(toks, "#"+string(rs[i:j]))
			i = j
		default:
			two := ""
			if i+1 < len(rs) {
				two = string(rs[i : i+2])
			}
			switch {
			case two == "==" || two == "!=" || two == "&&" || two == "||" || two == "<=" || two == ">=":
				toks = append(toks, two)
				i += 2
			case strings.ContainsRune("!()<>,", c):
				toks = append(toks, string(c))
				i++
			default:
				return nil, fmt.Errorf("%q: unexpected character %q", src, c)
			}
		}
	}
	return toks, nil
}

type exprParser struct {
	toks []string
	pos  int
	ctx  exprContext
	src  string
}

func (p *exprParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *exprParser) expect(tok string) error {
	if p.peek() != tok {
		return fmt.Errorf("%q: want %q, got %q", p.src, tok, p.peek())
	}
	p.pos++
	return nil
}

func (p *exprParser) or() (exprVal, error) {
	l, err := p.and()
	for err == nil && p.peek() == "||" {
		p.pos++
		var r exprVal
		if r, err = p.and(); err != nil {
			break
		}
		// a || b is a when a is truthy, else b (GitHub returns an operand).
		switch a, b := l.truth(), r.truth(); {
		case a == tTrue:
		case a == tFalse:
			l = r
		case b == tTrue:
			l = unknownWithTruth(tTrue)
		default:
			l = unknown
		}
	}
	return l, err
}

func (p *exprParser) and() (exprVal, error) {
	l, err := p.cmp()
	for err == nil && p.peek() == "&&" {
		p.pos++
		var r exprVal
		if r, err = p.cmp(); err != nil {
			break
		}
		// a && b is a when a is falsy, else b.
		switch a, b := l.truth(), r.truth(); {
		case a == tFalse:
		case a == tTrue:
			l = r
		case b == tFalse:
			l = unknownWithTruth(tFalse)
		default:
			l = unknown
		}
	}
	return l, err
}

func (p *exprParser) cmp() (exprVal, error) {
	l, err := p.unary()
	if err != nil {
		return l, err
	}
	switch op := p.peek(); op {
	case "==", "!=":
		p.pos++
		r, err := p.unary()
		if err != nil {
			return unknown, err
		}
		if !l.known || !r.known || l.b != nil || r.b != nil {
			return unknown, nil
		}
		eq := strings.EqualFold(l.s, r.s) && l.null == r.null
		return boolVal(eq == (op == "==")), nil
	case "<", ">", "<=", ">=":
		p.pos++
		_, err := p.unary()
		return unknown, err
	}
	return l, nil
}

func (p *exprParser) unary() (exprVal, error) {
	if p.peek() == "!" {
		p.pos++
		v, err := p.unary()
		switch v.truth() {
		case tTrue:
			return boolVal(false), err
		case tFalse:
			return boolVal(true), err
		}
		return unknown, err
	}
	return p.primary()
}

func (p *exprParser) primary() (exprVal, error) {
	tok := p.peek()
	if tok == "" {
		return unknown, fmt.Errorf("%q: unexpected end", p.src)
	}
	p.pos++
	switch {
	case tok == "(":
		v, err := p.or()
		if err != nil {
			return v, err
		}
		return v, p.expect(")")
	case strings.HasPrefix(tok, "'"):
		return exprVal{known: true, s: tok[1:]}, nil
	case strings.HasPrefix(tok, "#"):
		return exprVal{known: true, s: tok[1:]}, nil
	case tok == "true" || tok == "false":
		return boolVal(tok == "true"), nil
	case tok == "null":
		return exprVal{known: true, null: true}, nil
	case p.peek() == "(":
		return p.call(strings.ToLower(tok))
	case unicode.IsLetter([]rune(tok)[0]) || tok[0] == '_':
		if v, ok := p.ctx[strings.ToLower(tok)]; ok {
			return exprVal{known: true, s: v}, nil
		}
		return unknown, nil
	}
	return unknown, fmt.Errorf("%q: unexpected %q", p.src, tok)
}

func (p *exprParser) call(name string) (exprVal, error) {
	p.pos++ // (
	var args []exprVal
	for p.peek() != ")" {
		v, err := p.or()
		if err != nil {
			return unknown, err
		}
		args = append(args, v)
		if p.peek() == "," {
			p.pos++
		}
	}
	p.pos++ // )
	switch name {
	case "always":
		return boolVal(true), nil
	case "success", "failure", "cancelled":
		// A test sets the run's state as "success()" etc. in the context;
		// without it success() is true and the others are unknown.
		if v, ok := p.ctx[name+"()"]; ok {
			return boolVal(v == "true"), nil
		}
		if name == "success" {
			return boolVal(true), nil
		}
		return unknown, nil
	case "hashfiles":
		return unknown, nil
	case "contains", "startswith", "endswith":
		if len(args) != 2 {
			return unknown, fmt.Errorf("%q: %s takes two arguments", p.src, name)
		}
		if !args[0].known || !args[1].known {
			return unknown, nil
		}
		f := map[string]func(string, string) bool{"contains": strings.Contains, "startswith": strings.HasPrefix, "endswith": strings.HasSuffix}[name]
		return boolVal(f(strings.ToLower(args[0].s), strings.ToLower(args[1].s))), nil
	}
	return unknown, fmt.Errorf("%q: function %s() is not supported by this test's evaluator", p.src, name)
}

// TestExprEvaluator pins the evaluator the workflow checks rely on.
func TestExprEvaluator(t *testing.T) {
	ctx := exprContext{"github.event_name": "pull_request", "github.repository": "acme/bot-core"}
	for _, tc := range []struct {
		expr string
		want tri
	}{
		{"", tTrue},
		{"github.event_name == 'pull_request'", tTrue},
		{"${{ github.event_name != 'pull_request' }}", tFalse},
		{"github.event_name == 'PULL_REQUEST'", tTrue}, // GitHub compares strings case-insensitively
		{"always() && hashFiles('dist/sarif/*.sarif') != ''", tUnknown},
		{"!always() && hashFiles('x') != ''", tFalse},
		{"(github.event_name != 'pull_request' || github.event.pull_request.head.repo.full_name == github.repository)", tUnknown},
		{"github.event_name == 'push' || startsWith(github.repository, 'ACME/')", tTrue},
		{"failure()", tUnknown},
		{"github.ref == 'it''s'", tUnknown},
		{"!cancelled() && github.event_name == 'pull_request'", tUnknown},
		{"success()", tTrue},
	} {
		got, err := evalIf(tc.expr, ctx)
		if err != nil || got != tc.want {
			t.Errorf("%q = %v (%v), want %v", tc.expr, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		expr, state string
		want        tri
	}{
		{"!cancelled() && github.event_name == 'pull_request'", "false", tTrue},
		{"!cancelled() && github.event_name == 'pull_request'", "true", tFalse},
		{"success() && github.event_name == 'pull_request'", "false", tFalse},
		{"failure()", "true", tTrue},
	} {
		name := strings.SplitN(tc.expr, "(", 2)[0]
		c := exprContext{"github.event_name": "pull_request", strings.TrimPrefix(name, "!") + "()": tc.state}
		if got, err := evalIf(tc.expr, c); err != nil || got != tc.want {
			t.Errorf("%q with %s()=%s: %v (%v), want %v", tc.expr, strings.TrimPrefix(name, "!"), tc.state, got, err, tc.want)
		}
	}
	if _, err := evalIf("github.event_name ==", ctx); err == nil {
		t.Error("a truncated expression parsed")
	}
	if s, err := substitute("${{ vars.x || github.actor }}/y", exprContext{"vars.x": "", "github.actor": "bob"}); err != nil || s != "bob/y" {
		t.Errorf("substitute gave %q, %v; want bob/y", s, err)
	}
	if s, err := substitute("${{ vars.x || github.actor }}", exprContext{"github.actor": "bob"}); err == nil {
		t.Errorf("substitute of an unknown value gave %q", s)
	}
}
