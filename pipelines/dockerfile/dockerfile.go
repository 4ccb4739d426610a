// Package dockerfile reads which images a Dockerfile starts its stages from,
// so that a service built from its own Dockerfile has its base images in the
// provenance as a native build does. It reads FROM lines only; building is
// the engine's job.
package dockerfile

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Base is an image a stage starts from, and the platform it is pulled for
// when the FROM line says (--platform=$BUILDPLATFORM); "" is the target's.
type Base struct {
	Image, Platform string
}

// Bases returns the images the Dockerfile's stages start from, in order and
// each once. A FROM naming an earlier stage or scratch starts from no image.
// Variables are those of ARG lines before the first FROM, with args (the
// build arguments, and BUILDPLATFORM/TARGETPLATFORM as BuildKit predefines
// them) overriding their defaults.
func Bases(text string, args map[string]string) ([]Base, error) {
	global := map[string]string{}
	for _, k := range []string{"BUILDPLATFORM", "TARGETPLATFORM"} {
		if v, ok := args[k]; ok {
			global[k] = v
		}
	}
	var bases []Base
	var stages []string
	seenFrom := false
	for _, line := range instructions(text) {
		fields := strings.Fields(line)
		switch strings.ToUpper(fields[0]) {
		case "ARG":
			if seenFrom {
				continue
			}
			for _, decl := range fields[1:] {
				name, def, _ := strings.Cut(decl, "=")
				if v, ok := args[name]; ok {
					def = v
				}
				global[name] = strings.Trim(def, `"'`)
			}
		case "FROM":
			seenFrom = true
			var b Base
			for _, w := range fields[1:] {
				if p, ok := strings.CutPrefix(w, "--platform="); ok {
					var err error
					if b.Platform, err = expand(p, global); err != nil {
						return nil, fmt.Errorf("line %q: %w", line, err)
					}
				}
			}
			words := slices.DeleteFunc(fields[1:], func(w string) bool { return strings.HasPrefix(w, "--") })
			if len(words) == 0 {
				return nil, fmt.Errorf("line %q: FROM names no image", line)
			}
			var err error
			if b.Image, err = expand(words[0], global); err != nil {
				return nil, fmt.Errorf("line %q: %w", line, err)
			}
			if b.Image != "scratch" && !slices.Contains(stages, strings.ToLower(b.Image)) && !slices.Contains(bases, b) {
				bases = append(bases, b)
			}
			// The stage's name counts from the next FROM on.
			if len(words) >= 3 && strings.EqualFold(words[1], "AS") {
				stages = append(stages, strings.ToLower(words[2]))
			}
		}
	}
	if !seenFrom {
		return nil, fmt.Errorf("no FROM line: not a Dockerfile")
	}
	return bases, nil
}

// expand substitutes $NAME, ${NAME}, ${NAME:-default} and ${NAME-default}.
func expand(word string, vars map[string]string) (string, error) {
	var missing []string
	out := os.Expand(word, func(ref string) string {
		name, def, hasDef := strings.Cut(ref, "-")
		emptyToo := strings.HasSuffix(name, ":") // ${NAME:-x} also replaces an empty value
		name = strings.TrimSuffix(name, ":")
		v, ok := vars[name]
		switch {
		case ok && !(emptyToo && v == ""):
			return v
		case hasDef:
			return def
		}
		missing = append(missing, name)
		return ""
	})
	if len(missing) > 0 || out == "" {
		return "", fmt.Errorf("%q uses %s, which no ARG before the first FROM sets (give it in build-args)", word, strings.Join(missing, ", "))
	}
	return out, nil
}

// instructions are the Dockerfile's instructions, one string each: comments
// dropped and lines continued with a trailing backslash joined.
func instructions(text string) []string {
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}
