// Command write-db writes a Trivy database for benchmarks and local trials
// on machines that cannot download the real one: its only advisory names a
// package no image has, so every scan passes while running the real scanner.
//
//	go run ./test/trivydbtest/write-db DIR
package main

import (
	"fmt"
	"os"

	"github.com/bot-core/delivery/test/trivydbtest"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: write-db DIR")
		os.Exit(2)
	}
	err := trivydbtest.Write(os.Args[1], trivydbtest.Advisory{ID: "CVE-2099-9999", Package: "botcore-test-absent",
		Severity: "CRITICAL", Ecosystem: trivydbtest.Npm, Vulnerable: []string{"<1.0.0"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "write-db:", err)
		os.Exit(1)
	}
}
