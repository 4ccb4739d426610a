package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A release asks whether the DB can be had before it builds anything, then
// fetches it once for all its scans: check never downloads, fetch downloads
// only what is missing or due, and a fresh cache needs no registry at all.
func TestVulnDBCheckAndFetch(t *testing.T) {
	f := newFixture(t)
	ref, requests, blobGets := dbRegistry(t, f.db)
	env := map[string]string{"HOME": t.TempDir()}
	const unreachable = "127.0.0.1:1/trivy-db:2"
	cache := filepath.Join(t.TempDir(), "trivy-cache")

	r := botcore(t, env, "", "vuln-db", "check", "--cache-dir", cache, "--db-repository", unreachable)
	if l := lastLine(r.stderr); r.code != 1 || !strings.HasPrefix(l, "botcore: cannot download the vulnerability DB ("+unreachable+": ") ||
		!strings.HasSuffix(l, "): check the network or --db-repository, or pass --db-dir with a DB downloaded beforehand") {
		t.Errorf("check without a DB anywhere: %s", r)
	}

	r = botcore(t, env, "", "vuln-db", "check", "--cache-dir", cache, "--db-repository", unreachable, "--db-repository", ref)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "the vulnerability DB is available" || !strings.Contains(r.stderr, "the vulnerability DB is at "+ref) {
		t.Errorf("check with the second repository serving the DB: %s", r)
	}
	if requests.Load() == 0 || blobGets.Load() != 0 {
		t.Errorf("check made %d requests, %d of them blob downloads: want some, and none", requests.Load(), blobGets.Load())
	}

	r = botcore(t, env, "", "vuln-db", "fetch", "--cache-dir", cache, "--db-repository", ref)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "vulnerability DB in "+filepath.Join(cache, "db")+": schema 2, updated ") ||
		!strings.Contains(r.stderr, "downloading the vulnerability DB into "+filepath.Join(cache, "db")+" from "+ref) {
		t.Fatalf("fetch: %s", r)
	}
	if blobGets.Load() != 1 {
		t.Errorf("fetch downloaded %d blobs, want the DB's one layer", blobGets.Load())
	}

	// Fresh now: neither a second fetch nor a check reaches the registry, so
	// the scans that follow read the cache.
	before := requests.Load()
	r = botcore(t, env, "", "--json", "vuln-db", "fetch", "--cache-dir", cache, "--db-repository", ref)
	if r.code != 0 || !strings.Contains(r.stdout, `"schema_version": 2`) || strings.Contains(r.stderr, "downloading") {
		t.Errorf("second fetch: %s", r)
	}
	r = botcore(t, env, "", "vuln-db", "check", "--cache-dir", cache, "--db-repository", unreachable)
	if r.code != 0 || !strings.Contains(r.stderr, "needs no update") {
		t.Errorf("check with a fresh DB in the cache: %s", r)
	}
	if requests.Load() != before {
		t.Errorf("a fresh cache still made %d requests", requests.Load()-before)
	}
	// In the pipeline the mirror on the caller's loopback is reached through
	// a tunnel (--connect-to): Trivy's own download follows it too.
	before = blobGets.Load()
	host := strings.SplitN(ref, "/", 2)[0]
	port := host[strings.LastIndex(host, ":")+1:]
	r = botcore(t, env, "", "--connect-to", "127.0.0.1:1:127.0.0.1:"+port, "vuln-db", "fetch", "--cache-dir", t.TempDir(), "--db-repository", unreachable)
	if r.code != 0 || blobGets.Load() != before+1 {
		t.Errorf("fetch through --connect-to (%d downloads): %s", blobGets.Load()-before, r)
	}

	r = botcore(t, env, "", "scan", "--layout", f.layout, "--cache-dir", cache, "--db-repository", unreachable, "--severity", "CRITICAL")
	if got := gateLines(r.stderr); r.code != 1 || len(got) != 1 || got[0] != lineNext {
		t.Errorf("scan with the fetched DB: gate %q\n%s", got, r)
	}
}
