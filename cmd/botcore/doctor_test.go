package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-core/delivery/pipelines/registry/registrytest"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// doctorChecks runs doctor --json and returns its checks by name.
func doctorChecks(t *testing.T, env map[string]string) (result, map[string]check) {
	t.Helper()
	r := botcore(t, env, "", "--json", "doctor")
	var rep doctorReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	byName := map[string]check{}
	for i, c := range rep.Checks {
		if c.N != i+1 {
			t.Errorf("check %d numbered %d", i+1, c.N)
		}
		byName[c.Name] = c
	}
	if len(rep.Checks) != 6 {
		t.Errorf("%d checks, want 6: %+v", len(rep.Checks), rep.Checks)
	}
	if rep.OK != (r.code == 0) {
		t.Errorf("ok=%v with exit %d", rep.OK, r.code)
	}
	return r, byName
}

func wantStatus(t *testing.T, checks map[string]check, want map[string]string) {
	t.Helper()
	for n, st := range want {
		if checks[n].Status != st {
			t.Errorf("check %s: %s (%s), want %s", n, checks[n].Status, checks[n].Reason, st)
		}
	}
}

func TestDoctorAllOK(t *testing.T) {
	srv := registrytest.NewBasic(t)
	env := envFor(t, srv)
	// A stand-in dagger CLI on env's PATH.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "dagger"), []byte("#!/bin/sh\necho 'dagger v0.19.10 (test)'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env["PATH"] = bin

	r := botcore(t, env, "", "doctor")
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, want := range []string{
		"1. dagger      ok    dagger v0.19.10 (test) answered in",
		"2. registry    ok    " + srv.Host + "/bot is a generic registry and answers the registry API (basic authentication over plain HTTP)",
		"3. credentials ok    credentials from env (user alice), accepted by " + srv.Host,
		"4. push        ok    pushed the throwaway image " + srv.Host + "/bot/botcore-doctor:doctor-",
		"5. pull        ok    pulled " + srv.Host + "/bot/botcore-doctor@sha256:",
		"6. delete      ok    deleted " + srv.Host + "/bot/botcore-doctor@sha256:",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r)
		}
	}
	// The throwaway image and its tag are gone.
	repo, err := name.NewRepository(srv.Host+"/bot/botcore-doctor", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if tags, err := remote.List(repo, remote.WithAuth(srv.Auth())); err == nil && len(tags) > 0 {
		t.Errorf("tags left behind: %v", tags)
	}

	// --json, and dagger missing from PATH is a skip, not a failure.
	delete(env, "PATH")
	r, checks := doctorChecks(t, env)
	if r.code != 0 {
		t.Fatal(r)
	}
	wantStatus(t, checks, map[string]string{"dagger": "skip", "registry": "ok", "credentials": "ok", "push": "ok", "pull": "ok", "delete": "ok"})
	if !strings.Contains(checks["dagger"].Reason, "not on PATH") || checks["dagger"].Next == "" {
		t.Errorf("dagger skip: %+v", checks["dagger"])
	}
}

func TestDoctorBearer(t *testing.T) {
	srv := registrytest.NewBearer(t)
	env := envFor(t, srv)
	r, checks := doctorChecks(t, env)
	if r.code != 0 {
		t.Fatal(r)
	}
	wantStatus(t, checks, map[string]string{"registry": "ok", "credentials": "ok", "push": "ok", "pull": "ok", "delete": "ok"})
	if !strings.Contains(checks["registry"].Reason, "(bearer authentication over plain HTTP)") {
		t.Errorf("registry check: %+v", checks["registry"])
	}
	env["DOCKER_PASSWORD"] = "wrong"
	r, checks = doctorChecks(t, env)
	if r.code != 1 || checks["credentials"].Status != "FAIL" || !strings.Contains(checks["credentials"].Reason, "rejected the credentials") {
		t.Errorf("wrong password: %+v\n%s", checks["credentials"], r)
	}
}

func TestDoctorWrongPassword(t *testing.T) {
	srv := registrytest.NewBasic(t)
	env := envFor(t, srv)
	env["DOCKER_PASSWORD"] = "wrong"
	r, checks := doctorChecks(t, env)
	if r.code != 1 || !strings.Contains(r.stderr, "doctor: 1 check of 6 failed") {
		t.Errorf("exit/stderr: %s", r)
	}
	wantStatus(t, checks, map[string]string{"registry": "ok", "credentials": "FAIL", "push": "skip", "pull": "skip", "delete": "skip"})
	want := "registry " + srv.Host + " rejected the credentials for " + srv.Host + "/bot/botcore-doctor: check DOCKER_USERNAME/DOCKER_PASSWORD (or run `botcore registry login`)"
	if c := checks["credentials"]; !strings.Contains(c.Reason, want) || !strings.HasPrefix(c.Reason, "credentials from env (user alice): ") || c.Next == "" {
		t.Errorf("credentials check: %+v", c)
	}
	// The text form says the same.
	r = botcore(t, env, "", "doctor")
	if r.code != 1 || !strings.Contains(r.stdout, "3. credentials FAIL  credentials from env (user alice): "+want) ||
		!strings.Contains(r.stdout, "4. push        skip  needs working credentials (check 3)") {
		t.Errorf("text: %s", r)
	}
}

func TestDoctorReadOnly(t *testing.T) {
	srv := registrytest.NewBasic(t)
	env := envFor(t, srv)
	env["DOCKER_USERNAME"], env["DOCKER_PASSWORD"] = srv.ReadUser, srv.ReadPassword
	r, checks := doctorChecks(t, env)
	if r.code != 1 {
		t.Errorf("exit: %s", r)
	}
	wantStatus(t, checks, map[string]string{"registry": "ok", "credentials": "ok", "push": "FAIL", "pull": "skip", "delete": "skip"})
	want := "registry " + srv.Host + " denied push access to " + srv.Host + "/bot/botcore-doctor: the credentials are valid but lack that permission"
	if c := checks["push"]; !strings.Contains(c.Reason, want) || c.Next == "" {
		t.Errorf("push check: %+v", c)
	}
}

func TestDoctorDeleteRefused(t *testing.T) {
	srv := registrytest.NewBasic(t)
	srv.NoDelete = true
	r, checks := doctorChecks(t, envFor(t, srv))
	if r.code != 1 {
		t.Errorf("exit: %s", r)
	}
	wantStatus(t, checks, map[string]string{"push": "ok", "pull": "ok", "delete": "FAIL"})
	c := checks["delete"]
	want := "the registry refused to delete the throwaway image, so the tag " + srv.Host + "/bot/botcore-doctor:doctor-"
	if !strings.HasPrefix(c.Reason, want) || !strings.Contains(c.Reason, "does not support this operation") ||
		!strings.Contains(c.Next, "botcore-doctor:doctor-") {
		t.Errorf("delete check: %+v", c)
	}
	if tags := srv.Tags(t, srv.Host+"/bot/botcore-doctor"); len(tags) != 1 || !strings.Contains(c.Reason, tags[0]) {
		t.Errorf("left behind %v, reported %q", tags, c.Reason)
	}
}

func TestDoctorNoRegistry(t *testing.T) {
	r, checks := doctorChecks(t, map[string]string{})
	if r.code != 1 {
		t.Errorf("exit: %s", r)
	}
	wantStatus(t, checks, map[string]string{"dagger": "skip", "registry": "FAIL", "credentials": "skip", "push": "skip"})
	if !strings.Contains(checks["registry"].Reason, "no registry prefix given") {
		t.Errorf("registry check: %+v", checks["registry"])
	}
}
