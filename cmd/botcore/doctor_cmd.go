package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/bot-core/delivery/cmd/botcore/internal/credentials"
	"github.com/bot-core/delivery/pipelines/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Check statuses.
const (
	statusOK   = "ok"
	statusFail = "FAIL"
	statusSkip = "skip"
)

// doctorRepo is the repository under the prefix the throwaway image goes
// to; doctorLabel marks the image so it can be recognised and removed.
const (
	doctorRepo       = "botcore-doctor"
	doctorLabel      = "org.bot-core.doctor"
	doctorLabelValue = "throwaway"
	daggerTimeout    = 20 * time.Second
	registryTimeout  = 2 * time.Minute
)

type doctorCmd struct{}

// check is one numbered doctor check.
type check struct {
	N      int    `json:"n"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Reason string `json:"reason"`
	Next   string `json:"next,omitempty"`
}

type doctorReport struct {
	OK     bool    `json:"ok"`
	Checks []check `json:"checks"`
}

// doctor holds the state the checks hand on to each other.
type doctor struct {
	a      *app
	g      *Globals
	checks []check

	info   registry.Info
	repo   name.Repository
	auth   authn.Authenticator
	pushed name.Digest
	tag    name.Tag
}

func (d *doctor) add(name, status, reason, next string) bool {
	d.checks = append(d.checks, check{N: len(d.checks) + 1, Name: name, Status: status, Reason: reason, Next: next})
	return status != statusFail
}

func (d *doctor) skip(name, reason, next string) { d.add(name, statusSkip, reason, next) }

func (c *doctorCmd) Run(g *Globals, a *app) error {
	d := &doctor{a: a, g: g}
	d.checkDagger()
	ctx, cancel := context.WithTimeout(a.ctx, registryTimeout)
	defer cancel()
	switch {
	case !d.checkRegistry(ctx):
		d.skip("credentials", "needs a reachable registry (check 2)", "fix check 2 first")
		d.skipWrites("needs a reachable registry (check 2)", "fix check 2 first")
	case !d.checkCredentials(ctx):
		d.skipWrites("needs working credentials (check 3)", "fix check 3 first")
	case !d.checkPush(ctx):
		d.skip("pull", "nothing was pushed (check 4)", "fix check 4 first")
		d.skip("delete", "nothing was pushed (check 4)", "fix check 4 first")
	default:
		d.checkPull(ctx)
		d.checkDelete(ctx)
	}

	failed := 0
	for _, c := range d.checks {
		if c.Status == statusFail {
			failed++
		}
	}
	if g.JSON {
		if err := a.printJSON(doctorReport{OK: failed == 0, Checks: d.checks}); err != nil {
			return err
		}
	} else {
		for _, c := range d.checks {
			fmt.Fprintf(a.stdout, "%d. %-11s %-4s  %s\n", c.N, c.Name, c.Status, c.Reason)
			if c.Next != "" {
				fmt.Fprintf(a.stdout, "   %-11s       next: %s\n", "", c.Next)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("doctor: %s of %d failed", plural(failed, "check", "checks"), len(d.checks))
	}
	return nil
}

func (d *doctor) skipWrites(reason, next string) {
	for _, n := range []string{"push", "pull", "delete"} {
		d.skip(n, reason, next)
	}
}

// checkDagger: the dagger CLI is on PATH and `dagger version` answers.
func (d *doctor) checkDagger() {
	const name = "dagger"
	path, err := lookPath("dagger", d.a.env("PATH"))
	if err != nil {
		d.skip(name, "the dagger CLI is not on PATH, so the pipelines cannot run on this machine", "install the dagger CLI (https://docs.dagger.io/install) to run the pipelines locally")
		return
	}
	ctx, cancel := context.WithTimeout(d.a.ctx, daggerTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "version")
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	first := strings.TrimSpace(strings.SplitN(strings.TrimSpace(out.String()), "\n", 2)[0])
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		d.add(name, statusFail, fmt.Sprintf("`%s version` did not answer within %s", path, daggerTimeout),
			"check that the Dagger engine's container runtime (docker, podman or nerdctl) is running, then retry")
	case err != nil:
		d.add(name, statusFail, fmt.Sprintf("`%s version` failed: %v: %s", path, err, first),
			"reinstall the dagger CLI (https://docs.dagger.io/install) and check its output")
	default:
		d.add(name, statusOK, fmt.Sprintf("%s answered in %s", first, time.Since(start).Round(time.Millisecond)), "")
	}
}

// lookPath finds an executable in the PATH of env (not of the process).
func lookPath(file, pathEnv string) (string, error) {
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, file)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// checkRegistry: the prefix is valid and the registry answers /v2/.
func (d *doctor) checkRegistry(ctx context.Context) bool {
	const name = "registry"
	info, err := d.g.info()
	if err != nil {
		return d.add(name, statusFail, err.Error(), "pass --registry or set DOCKER_REGISTRY to the prefix the services are published under, e.g. ghcr.io/acme/bot-core")
	}
	d.info = info
	if d.repo, err = info.Repo(doctorRepo); err != nil {
		return d.add(name, statusFail, err.Error(), "fix the registry prefix")
	}
	reg, err := info.Reg()
	if err != nil {
		return d.add(name, statusFail, err.Error(), "fix the registry prefix")
	}
	ch, err := transport.Ping(ctx, reg, http.DefaultTransport)
	if err != nil {
		return d.add(name, statusFail, registry.Explain(err, info).Error(), "check the --registry host and port and the network, then retry")
	}
	auth := "anonymous access"
	if ch.Scheme != "" {
		auth = ch.Scheme + " authentication"
	}
	if ch.Insecure {
		auth += " over plain HTTP"
	}
	reason := fmt.Sprintf("%s is a %s registry and answers the registry API (%s)", info.Prefix(), info.Kind, auth)
	for _, w := range info.Warnings {
		reason += "; warning: " + w
	}
	return d.add(name, statusOK, reason, "")
}

// checkCredentials: which keychain step answers, and the registry accepts
// it for reading (a HEAD of a tag that does not exist must give 404, not
// 401).
func (d *doctor) checkCredentials(ctx context.Context) bool {
	const name = "credentials"
	source, auth, err := credentials.ResolveSource(ctx, d.info, d.a.env)
	if err != nil {
		return d.add(name, statusFail, fmt.Sprintf("the %s credentials step failed: %v", source, err), credentialsNext(d.info))
	}
	d.auth = auth
	who := describeAuth(ctx, d.info, source, auth)
	probe := d.repo.Tag("doctor-probe-" + randomHex(4))
	_, err = remote.Head(probe, d.options(ctx)...)
	var terr *transport.Error
	switch {
	case err == nil, errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
		if source == credentials.SourceAnonymous {
			return d.add(name, statusOK, "no credentials found (anonymous): the registry allows anonymous reads, but pushes will likely fail", credentialsNext(d.info))
		}
		return d.add(name, statusOK, fmt.Sprintf("%s, accepted by %s", who, d.info.Registry), "")
	}
	return d.add(name, statusFail, fmt.Sprintf("%s: %s", who, registry.Explain(err, d.info)), credentialsNext(d.info))
}

func describeAuth(ctx context.Context, info registry.Info, source credentials.Source, auth authn.Authenticator) string {
	switch source {
	case credentials.SourceAnonymous:
		return "no credentials found (anonymous)"
	case credentials.SourceCloud:
		source = credentials.Source(string(info.Kind) + " cloud token flow")
	}
	cfg, err := authn.Authorization(ctx, auth)
	if err == nil && cfg.Username != "" {
		return fmt.Sprintf("credentials from %s (user %s)", source, cfg.Username)
	}
	return fmt.Sprintf("credentials from %s", source)
}

func credentialsNext(info registry.Info) string {
	switch info.Kind {
	case registry.KindECR:
		return "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or DOCKER_USERNAME=AWS and DOCKER_PASSWORD=$(aws ecr get-login-password)"
	case registry.KindGCR, registry.KindGAR:
		return "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key or GOOGLE_OAUTH_ACCESS_TOKEN=$(gcloud auth print-access-token)"
	case registry.KindACR:
		return "set AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID of a service principal, or DOCKER_USERNAME/DOCKER_PASSWORD of an ACR token"
	case registry.KindGHCR:
		return "set GITHUB_TOKEN (with write:packages) and GITHUB_ACTOR, or DOCKER_USERNAME/DOCKER_PASSWORD, or run `botcore registry login`"
	}
	return "set DOCKER_USERNAME/DOCKER_PASSWORD or run `botcore registry login`"
}

func (d *doctor) options(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(d.auth), remote.WithUserAgent("botcore-doctor")}
}

// throwaway builds a tiny image: one small random layer and the doctor
// label.
func throwaway() (v1.Image, error) {
	layer, err := random.Layer(512, types.DockerLayer)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Labels = map[string]string{doctorLabel: doctorLabelValue}
	return mutate.ConfigFile(img, cf)
}

// checkPush: pushing a throwaway image really works.
func (d *doctor) checkPush(ctx context.Context) bool {
	const name = "push"
	img, err := throwaway()
	if err != nil {
		return d.add(name, statusFail, fmt.Sprintf("cannot build the throwaway image: %v", err), "report this as a botcore bug")
	}
	digest, err := img.Digest()
	if err != nil {
		return d.add(name, statusFail, fmt.Sprintf("cannot build the throwaway image: %v", err), "report this as a botcore bug")
	}
	d.tag = d.repo.Tag("doctor-" + time.Now().UTC().Format("20060102-150405") + "-" + randomHex(4))
	if err := remote.Write(d.tag, img, d.options(ctx)...); err != nil {
		return d.add(name, statusFail, registry.Explain(err, d.info).Error(), credentialsNext(d.info))
	}
	d.pushed = d.repo.Digest(digest.String())
	return d.add(name, statusOK, fmt.Sprintf("pushed the throwaway image %s (%s)", d.tag, digest), "")
}

// checkPull: the pushed image comes back by digest, byte for byte.
func (d *doctor) checkPull(ctx context.Context) bool {
	const name = "pull"
	next := "check the registry's storage and any proxy or cache in front of it"
	img, err := remote.Image(d.pushed, d.options(ctx)...)
	if err != nil {
		return d.add(name, statusFail, registry.Explain(err, d.info).Error(), next)
	}
	got, err := img.Digest()
	if err != nil {
		return d.add(name, statusFail, fmt.Sprintf("cannot read the pulled manifest: %v", err), next)
	}
	if got.String() != d.pushed.DigestStr() {
		return d.add(name, statusFail, fmt.Sprintf("pulled %s but pushed %s", got, d.pushed.DigestStr()), next)
	}
	cf, err := img.ConfigFile()
	if err != nil || cf.Config.Labels[doctorLabel] != doctorLabelValue {
		return d.add(name, statusFail, fmt.Sprintf("the pulled config lacks the label %s=%s (%v)", doctorLabel, doctorLabelValue, err), next)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		return d.add(name, statusFail, fmt.Sprintf("the pulled image does not have its one layer (%v)", err), next)
	}
	// Reading the blob to the end makes go-containerregistry verify its
	// digest.
	rc, err := layers[0].Compressed()
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return d.add(name, statusFail, fmt.Sprintf("the pulled layer is wrong: %v", registry.Explain(err, d.info)), next)
	}
	return d.add(name, statusOK, fmt.Sprintf("pulled %s back by digest, manifest, config and layer match", d.pushed), "")
}

// checkDelete: the throwaway image can be deleted by digest.
func (d *doctor) checkDelete(ctx context.Context) bool {
	const name = "delete"
	if err := remote.Delete(d.pushed, d.options(ctx)...); err != nil {
		return d.add(name, statusFail,
			fmt.Sprintf("the registry refused to delete the throwaway image, so the tag %s is left behind: %s", d.tag, registry.Explain(err, d.info)),
			fmt.Sprintf("delete %s by hand (e.g. in the registry's web UI) and grant delete permission, or `botcore cleanup` cannot work either", d.tag))
	}
	return d.add(name, statusOK, fmt.Sprintf("deleted %s by digest", d.pushed), "")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
