package main

import (
	"strings"
	"testing"
)

func TestStartCheckCommand(t *testing.T) {
	for _, c := range []struct {
		args   []string
		code   int
		stderr []string
	}{
		{[]string{"start-check", "--port", "0", "--", "true"}, 2, []string{"--port 0 is not a TCP port"}},
		{[]string{"start-check", "--port", "80", "--path", "health", "--", "true"}, 2, []string{`--path "health" must start with /`}},
		{[]string{"start-check", "--port", "80"}, 2, []string{`expected "<command> ..."`}},
		{[]string{"start-check", "--port", "80", "--health-command", "/bin/check", "--", "true"}, 2, []string{`--health-command "/bin/check" must be a JSON array`}},
		{[]string{"start-check", "--port", "80", "--health-command", `["/bin/true"]`, "--path", "/h", "--", "true"}, 2, []string{"give --path or --health-command, not both"}},
		{[]string{"start-check", "--port", "1", "--timeout", "20s", "--health-command", `["sh","-c","test -e /nonexistent"]`, "--", "sh", "-c", "exit 5"}, 1,
			[]string{"it exited (status 5)", "before its health check sh -c test -e /nonexistent passed"}},
		{[]string{"start-check", "--port", "1", "--timeout", "1s", "--health-command", `["sh","-c","echo not yet; exit 1"]`, "--", "sleep", "30"}, 1,
			[]string{"its health check sh -c echo not yet; exit 1 did not pass within 1s (last: status 1: not yet)"}},
		{[]string{"start-check", "--port", "1", "--timeout", "20s", "--", "sh", "-c", "echo booting; echo no config >&2; exit 4"}, 1,
			[]string{"it exited (status 4)", "before answering GET /health", "booting", "no config"}},
	} {
		r := botcore(t, map[string]string{}, "", c.args...)
		if r.code != c.code {
			t.Errorf("%v: exit %d, want %d\n%s", c.args, r.code, c.code, r)
		}
		for _, w := range c.stderr {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%v: stderr does not say %q:\n%s", c.args, w, r.stderr)
			}
		}
	}
}
