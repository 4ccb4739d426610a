// Command actionlint lints GitHub Actions workflows with actionlint used as a
// library and prints every error as one JSON object per line. shellcheck and
// pyflakes run only when found on PATH. It exits 0 whatever it finds (the
// caller, test/repo, judges the errors) and 2 when it cannot lint at all.
//
//	go run . [-shellcheck PATH] WORKFLOW...
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/rhysd/actionlint"
)

type finding struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func main() {
	shellcheck := flag.String("shellcheck", "", "shellcheck executable (default: shellcheck on PATH, if any)")
	flag.Parse()
	opts := &actionlint.LinterOptions{LogWriter: io.Discard}
	opts.Shellcheck = *shellcheck
	if opts.Shellcheck == "" {
		if p, err := exec.LookPath("shellcheck"); err == nil {
			opts.Shellcheck = p
		}
	}
	if p, err := exec.LookPath("pyflakes"); err == nil {
		opts.Pyflakes = p
	}
	l, err := actionlint.NewLinter(io.Discard, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	errs, err := l.LintFiles(flag.Args(), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	enc := json.NewEncoder(os.Stdout)
	for _, e := range errs {
		if err := enc.Encode(finding{File: e.Filepath, Line: e.Line, Column: e.Column, Kind: e.Kind, Message: e.Message}); err != nil {
			os.Exit(2)
		}
	}
	if opts.Shellcheck == "" {
		fmt.Fprintln(os.Stderr, "actionlint: shellcheck not found: run: scripts were not shellchecked")
	}
}
