package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/bot-core/delivery/test/sigstoretest"
	"github.com/bot-core/delivery/test/trivydbtest"
)

var stageLine = regexp.MustCompile(`stage ([a-z+]+): ([0-9.]+)s`)

// BenchmarkSupplyChainStages prints the time each stage adds to a keyless
// build-all of all three services on both platforms:
//
//	go test ./test/e2e -run '^$' -bench SupplyChainStages -benchtime 1x
//
// "cold DB" scans against a database the engine has never seen (every scan
// runs), "warm DB" reruns the same release with the same database (the
// engine reuses the scans and SBOMs); signing always runs. Service builds
// come from the engine's cache: the figures are the supply-chain stages.
func BenchmarkSupplyChainStages(b *testing.B) {
	s := sigstoretest.Start(b)
	s.Issuer.SetActionsIdentity(sigstoretest.TokenClaims{Email: "bench@acme.example"})
	for k, v := range s.Issuer.ActionsEnv() {
		b.Setenv(k, v)
	}
	srv := startRegistry(b)
	db := b.TempDir()
	// A fresh advisory ID gives the engine a database it has not scanned with.
	if err := trivydbtest.Write(db, trivydbtest.Advisory{ID: fmt.Sprintf("CVE-2099-%d", time.Now().UnixNano()%100000),
		Package: "botcore-bench-absent", Severity: "LOW", Ecosystem: trivydbtest.Npm, Vulnerable: []string{"<1.0.0"}}); err != nil {
		b.Fatal(err)
	}
	run := func(label, version string) {
		start := time.Now()
		stderr, err := daggerCallErr(b, repoRoot(b), "build-all", "--trivy-db", db, "--version", version,
			"--registry", srv+"/bench", "--registry-service", "tcp://"+srv, "--no-tlog", "--insecure-ignore-sct",
			"--oidc-request-url", "env:ACTIONS_ID_TOKEN_REQUEST_URL", "--oidc-request-token", "env:ACTIONS_ID_TOKEN_REQUEST_TOKEN",
			"--fulcio-url", s.Fulcio.URL, "--host-services", hostPort(b, s.Fulcio.URL)+","+hostPort(b, s.Issuer.URL))
		if err != nil {
			b.Fatalf("%s: %v\n%s", label, err, tail(stderr, 40))
		}
		fmt.Printf("%-8s total %6.1fs", label, time.Since(start).Seconds())
		for _, m := range stageLine.FindAllStringSubmatch(stderr, -1) {
			if m[1] == "done" {
				continue
			}
			sec, _ := strconv.ParseFloat(m[2], 64)
			fmt.Printf("  %s %.1fs", m[1], sec)
		}
		fmt.Println()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v := fmt.Sprintf("v9.%d.0", i)
		run("cold DB", v)
		run("warm DB", v)
	}
}
