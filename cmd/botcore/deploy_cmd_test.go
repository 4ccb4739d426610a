package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bot-core/delivery/cmd/botcore/internal/deploy"
	"github.com/bot-core/delivery/cmd/botcore/internal/dockertest"
	"github.com/bot-core/delivery/cmd/botcore/internal/signing"
	"github.com/bot-core/delivery/pipelines/registry/registrytest"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// deployCompose has the shape of docker-compose.prod.yml: image
// ${DOCKER_REGISTRY}/<service>:${VERSION}, pull_policy always, the version
// label, a healthcheck (python-ai-service's without a test: the image
// declares it); plus a variable from the env file.
const deployCompose = `name: bot-core
services:
  rust-core-engine:
    image: ${DOCKER_REGISTRY}/rust-core-engine:${VERSION}
    pull_policy: always
    restart: unless-stopped
    environment:
      GREETING: ${GREETING:?set GREETING in the env file}
    labels:
      com.bot-core.version: ${VERSION}
    healthcheck:
      test: ["CMD", "/app", "healthcheck"]
      interval: 1s
      timeout: 3s
      retries: 2
  python-ai-service:
    image: ${DOCKER_REGISTRY}/python-ai-service:${VERSION}
    pull_policy: always
    restart: unless-stopped
    labels:
      com.bot-core.version: ${VERSION}
    # No test: deploy runs the one the image declares in its label.
    healthcheck:
      interval: 1s
      timeout: 3s
      retries: 2
`

var deployServices = []string{"python-ai-service", "rust-core-engine"}

// keyPair writes an unencrypted ECDSA P-256 key pair (PKCS#8 private key,
// PKIX public key) and returns the two paths.
func keyPair(t *testing.T, dir, base string) (priv, pub string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub = filepath.Join(dir, base+".key"), filepath.Join(dir, base+".pub")
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// pushedRelease is what the test pushed for one version: service -> digest.
type pushedRelease map[string]string

type deployFixture struct {
	eng     *dockertest.Engine
	srv     *registrytest.Server
	env     map[string]string
	dir     string
	compose string
	pub     string
	rels    map[string]pushedRelease
}

// pushRelease pushes each service's image of version; broken names the
// services whose /health fails; signer is the key that signs each service
// ("" leaves it unsigned).
func (f *deployFixture) pushRelease(t *testing.T, bin, version string, broken []string, signer map[string]string) {
	t.Helper()
	rel := pushedRelease{}
	for _, s := range deployServices {
		repo := f.srv.Host + "/bot/" + s
		rel[s] = f.srv.Push(t, repo+":"+version, dockertest.AppIndex(t, bin, s, version, slices.Contains(broken, s)))
		if key := signer[s]; key != "" {
			sgn, err := signing.NewSigner(context.Background(), signing.SignerOptions{
				Key:      signing.KeyRef(key),
				Registry: []remote.Option{remote.WithAuth(f.srv.Auth())},
			})
			if err != nil {
				t.Fatal(err)
			}
			d, err := name.NewDigest(repo + "@" + rel[s])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sgn.SignImage(context.Background(), d); err != nil {
				t.Fatalf("signing %s@%s: %v", repo, rel[s], err)
			}
		}
	}
	f.rels[version] = rel
}

// deploy runs botcore deploy and logs its output (shown with -v).
func (f *deployFixture) deploy(t *testing.T, args ...string) result {
	t.Helper()
	r := botcore(t, f.env, "", args...)
	t.Logf("botcore %s\n%s", strings.Join(args[1:], " "), r)
	return r
}

func (f *deployFixture) args(project, version string, extra ...string) []string {
	return append([]string{"deploy", "--version", version, "--compose-file", f.compose,
		"--project-name", project, "--key", f.pub, "--insecure-ignore-tlog", "--health-timeout", "90s"}, extra...)
}

// ctr is a container of the project as the engine reports it.
type ctr struct {
	id, version, image, health, greeting string
}

// containers lists the project's containers by service.
func (f *deployFixture) containers(t *testing.T, project string) map[string]ctr {
	t.Helper()
	ctx := context.Background()
	res, err := f.eng.Client.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", "com.docker.compose.project="+project)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]ctr{}
	for _, c := range res.Items {
		ins, err := f.eng.Client.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		x := ctr{id: c.ID, version: c.Labels["com.bot-core.version"], image: ins.Container.Config.Image, health: string(ins.Container.State.Status)}
		if h := ins.Container.State.Health; h != nil {
			x.health = string(h.Status)
		}
		for _, e := range ins.Container.Config.Env {
			if v, ok := strings.CutPrefix(e, "GREETING="); ok {
				x.greeting = v
			}
		}
		svc := c.Labels["com.docker.compose.service"]
		if _, dup := out[svc]; dup {
			t.Fatalf("two containers for %s in project %s", svc, project)
		}
		out[svc] = x
	}
	return out
}

// checkRunning asserts every service of the project runs version, healthy,
// pinned to the digest that was pushed for it.
func (f *deployFixture) checkRunning(t *testing.T, project, version string) map[string]ctr {
	t.Helper()
	cs := f.containers(t, project)
	if got := slices.Sorted(maps.Keys(cs)); !slices.Equal(got, deployServices) {
		t.Fatalf("services of %s: %v, want %v", project, got, deployServices)
	}
	for s, c := range cs {
		want := f.srv.Host + "/bot/" + s + "@" + f.rels[version][s]
		if c.version != version || c.image != want || c.health != "healthy" {
			t.Errorf("%s: version %q image %q health %q; want %s %s healthy", s, c.version, c.image, c.health, version, want)
		}
	}
	if g := cs["rust-core-engine"].greeting; g != "hello from the env file" {
		t.Errorf("GREETING in rust-core-engine = %q: the env file did not reach compose", g)
	}
	return cs
}

func (f *deployFixture) imagePresent(t *testing.T, service, version string) bool {
	t.Helper()
	ref := f.srv.Host + "/bot/" + service + "@" + f.rels[version][service]
	_, err := f.eng.Client.ImageInspect(context.Background(), ref)
	return err == nil
}

// setFlag sets the value that follows flag in args.
func setFlag(args []string, flag, value string) {
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		panic("no " + flag + " in args")
	}
	args[i+1] = value
}

func wantAll(t *testing.T, r result, where string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(where, w) {
			t.Errorf("output lacks %q:\n%s", w, r)
		}
	}
}

// TestDeploy drives `botcore deploy` against a real dockerd, a real compose
// plugin and a local registry holding signed (and unsigned, and wrongly
// signed, and broken) releases.
func TestDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real Docker engine (skipped with -short)")
	}
	eng := dockertest.Start(t)
	bin := dockertest.BuildApp(t)
	srv := registrytest.NewBasic(t)

	dir := t.TempDir()
	priv, pub := keyPair(t, dir, "cosign")
	otherPriv, _ := keyPair(t, dir, "other")
	f := &deployFixture{eng: eng, srv: srv, dir: dir, pub: pub, rels: map[string]pushedRelease{}, compose: filepath.Join(dir, "docker-compose.prod.yml")}
	if err := os.WriteFile(f.compose, []byte(deployCompose), 0o644); err != nil {
		t.Fatal(err)
	}
	// The .env next to the compose file is read by default, as compose does.
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("GREETING=hello from the env file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.env = envFor(t, srv) // DOCKER_REGISTRY=<registry>/bot and its credentials
	maps.Copy(f.env, eng.Env())

	signedBy := func(key string) map[string]string {
		return map[string]string{"rust-core-engine": key, "python-ai-service": key}
	}
	f.pushRelease(t, bin, "v1.0.0", nil, signedBy(priv))
	f.pushRelease(t, bin, "v1.1.0", nil, signedBy(priv))
	f.pushRelease(t, bin, "v1.2.0", []string{"python-ai-service"}, signedBy(priv))                                    // signed, unhealthy
	f.pushRelease(t, bin, "v1.3.0", nil, nil)                                                                         // unsigned
	f.pushRelease(t, bin, "v1.4.0", nil, map[string]string{"rust-core-engine": priv, "python-ai-service": otherPriv}) // one wrongly signed

	const project = "botcore-e2e"

	t.Run("dry run changes nothing", func(t *testing.T) {
		r := f.deploy(t, f.args(project, "v1.0.0", "--dry-run")...)
		if r.code != 0 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stdout, "Deploy plan: v1.0.0 of project "+project, "env file "+filepath.Join(dir, ".env"),
			srv.Host+"/bot/rust-core-engine:v1.0.0", f.rels["v1.0.0"]["rust-core-engine"],
			srv.Host+"/bot/python-ai-service:v1.0.0", f.rels["v1.0.0"]["python-ai-service"],
			"cosign signature of each image digest by the key "+pub, "transparency log NOT checked",
			"Previous:       none (no previous deployment recorded: nothing to roll back to", "compose --ansi never --progress plain --project-name "+project, "up --detach --pull never",
			"Dry run: nothing was verified, pulled or changed.")
		if cs := f.containers(t, project); len(cs) != 0 {
			t.Errorf("dry run created containers: %v", cs)
		}
		if f.imagePresent(t, "rust-core-engine", "v1.0.0") {
			t.Error("dry run pulled an image")
		}
	})

	t.Run("first deploy is healthy", func(t *testing.T) {
		r := f.deploy(t, f.args(project, "v1.0.0")...)
		if r.code != 0 {
			t.Fatal(r)
		}
		f.checkRunning(t, project, "v1.0.0")
		wantAll(t, r, r.stderr, "verified rust-core-engine", "verified python-ai-service", "pulling "+srv.Host+"/bot/python-ai-service@",
			"python-ai-service: health check from the image's label: /app healthcheck", "python-ai-service: healthy", "v1.0.0 is deployed and healthy")
		if strings.Contains(r.stderr, "rust-core-engine: health check from the image's label") {
			t.Error("the compose file's own test for rust-core-engine was replaced by the image's")
		}
		wantAll(t, r, r.stdout, "rust-core-engine", "healthy")
	})

	var v11 map[string]ctr
	t.Run("upgrade is healthy", func(t *testing.T) {
		r := f.deploy(t, f.args(project, "v1.1.0")...)
		if r.code != 0 {
			t.Fatal(r)
		}
		v11 = f.checkRunning(t, project, "v1.1.0")
		wantAll(t, r, r.stderr, "v1.1.0 is deployed and healthy")
		// The state file records what runs and what ran before, by digest.
		st := f.state(t, project)
		f.checkState(t, st.Running, "v1.1.0", true)
		f.checkState(t, st.Previous, "v1.0.0", true)
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("unsigned release is refused", func(t *testing.T) {
		r := f.deploy(t, f.args(project, "v1.3.0")...)
		if r.code != 1 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stderr, "refusing to deploy v1.3.0: the signature of 2 of 2 images does not verify; nothing was pulled or changed",
			"python-ai-service ("+srv.Host+"/bot/python-ai-service:v1.3.0", "rust-core-engine ("+srv.Host+"/bot/rust-core-engine:v1.3.0")
		if now := f.checkRunning(t, project, "v1.1.0"); !maps.Equal(now, v11) {
			t.Errorf("containers changed: %v, were %v", now, v11)
		}
		for _, s := range deployServices {
			if f.imagePresent(t, s, "v1.3.0") {
				t.Errorf("the unsigned image of %s was pulled", s)
			}
		}
	})

	t.Run("wrongly signed release is refused", func(t *testing.T) {
		r := f.deploy(t, f.args(project, "v1.4.0")...)
		if r.code != 1 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stderr, "refusing to deploy v1.4.0: the signature of 1 of 2 images does not verify; nothing was pulled or changed",
			"python-ai-service ("+srv.Host+"/bot/python-ai-service:v1.4.0")
		if strings.Contains(r.stderr, "rust-core-engine ("+srv.Host) {
			t.Errorf("rust-core-engine is correctly signed but reported:\n%s", r)
		}
		if now := f.checkRunning(t, project, "v1.1.0"); !maps.Equal(now, v11) {
			t.Errorf("containers changed: %v, were %v", now, v11)
		}
		if f.imagePresent(t, "rust-core-engine", "v1.4.0") {
			t.Error("an image of the refused release was pulled")
		}
	})

	t.Run("an older signed release tagged as a new version is refused", func(t *testing.T) {
		for _, s := range deployServices {
			f.srv.Tag(t, f.srv.Host+"/bot/"+s, "v1.9.0", f.rels["v1.0.0"][s])
		}
		r := f.deploy(t, f.args(project, "v1.9.0")...)
		if r.code != 1 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stderr, "refusing to deploy v1.9.0: 2 images are not that release; nothing was pulled or changed",
			"is release v1.0.0 (its org.opencontainers.image.version label), not v1.9.0")
		if now := f.checkRunning(t, project, "v1.1.0"); !maps.Equal(now, v11) {
			t.Errorf("containers changed: %v, were %v", now, v11)
		}
	})

	t.Run("dry run names the previous version", func(t *testing.T) {
		r := f.deploy(t, f.args(project, "v1.2.0", "--dry-run")...)
		if r.code != 0 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stdout, "Previous:       v1.1.0 (read from the running containers' com.bot-core.version label)",
			"5. on failure: roll back to v1.1.0")
	})

	t.Run("dry run prints the plan as JSON", func(t *testing.T) {
		r := f.deploy(t, f.args(project, "v1.2.0", "--dry-run", "--json")...)
		if r.code != 0 {
			t.Fatal(r)
		}
		var plan struct {
			Project  string `json:"project"`
			Previous string `json:"previous"`
			Release  struct {
				Version string `json:"version"`
				Images  []struct {
					Service, Digest, Pinned string
				} `json:"images"`
			} `json:"release"`
			Compose []string `json:"compose"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil {
			t.Fatalf("%v\n%s", err, r)
		}
		if plan.Project != project || plan.Previous != "v1.1.0" || plan.Release.Version != "v1.2.0" || len(plan.Release.Images) != 2 ||
			plan.Release.Images[0].Digest != f.rels["v1.2.0"]["python-ai-service"] ||
			plan.Release.Images[1].Pinned != srv.Host+"/bot/rust-core-engine@"+f.rels["v1.2.0"]["rust-core-engine"] ||
			!slices.Contains(plan.Compose, "up") {
			t.Errorf("plan: %+v", plan)
		}
	})

	t.Run("health timeout rolls back", func(t *testing.T) {
		// python-ai-service's failing checks do not count during a long
		// start period: it stays "starting" until the timeout.
		slow := filepath.Join(dir, "slow-start.yml")
		if err := os.WriteFile(slow, []byte(deployCompose+"      start_period: 10m\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		args := f.args(project, "v1.2.0")
		setFlag(args, "--compose-file", slow)
		setFlag(args, "--health-timeout", "5s")
		r := f.deploy(t, args...)
		if r.code != 1 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stderr, "deploy of v1.2.0 failed: service python-ai-service is not healthy after 5s (starting: ",
			"rolled back to v1.1.0, which is running and healthy")
		f.checkRunning(t, project, "v1.1.0")
	})

	t.Run("unhealthy release rolls back", func(t *testing.T) {
		r := f.deploy(t, f.args(project, "v1.2.0")...)
		if r.code != 1 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stderr, "deploy of v1.2.0 failed: service python-ai-service is unhealthy",
			"rolling back to v1.1.0", "rolled back to v1.1.0, which is running and healthy")
		f.checkRunning(t, project, "v1.1.0")
	})

	t.Run("failed rollback is reported", func(t *testing.T) {
		// The rollback target is verified like any release: an unsigned
		// one is refused, and the failed release stays.
		r := f.deploy(t, f.args(project, "v1.2.0", "--previous", "v1.3.0")...)
		if r.code != 1 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stderr, "deploy of v1.2.0 failed: service python-ai-service is unhealthy",
			"rolling back to v1.3.0", "the rollback to v1.3.0 failed too: refusing to deploy v1.3.0: the signature of 2 of 2 images does not verify")
		cs := f.containers(t, project)
		if c := cs["python-ai-service"]; c.version != "v1.2.0" || c.health != "unhealthy" {
			t.Errorf("python-ai-service after the failed rollback: %+v", c)
		}
	})

	t.Run("unhealthy first deploy is left as it is", func(t *testing.T) {
		const fresh = "botcore-e2e-fresh"
		r := f.deploy(t, f.args(fresh, "v1.2.0", "--services", "python-ai-service")...)
		if r.code != 1 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stderr, "deploy of v1.2.0 failed: service python-ai-service is unhealthy",
			"no previous deployment recorded: nothing to roll back to, the stack was left as it is")
		cs := f.containers(t, fresh)
		if len(cs) != 1 || cs["python-ai-service"].health != "unhealthy" || cs["python-ai-service"].version != "v1.2.0" {
			t.Errorf("containers of %s: %+v", fresh, cs)
		}

		// One service more, at another version: the previous version of
		// the whole stack is ambiguous and must be named.
		if r := f.deploy(t, f.args(fresh, "v1.0.0", "--services", "rust-core-engine")...); r.code != 0 {
			t.Fatal(r)
		}
		r = f.deploy(t, f.args(fresh, "v1.1.0", "--dry-run")...)
		if r.code != 1 || !strings.Contains(r.stderr, "the running services of project "+fresh+
			" are at different versions: v1.0.0 (rust-core-engine), v1.2.0 (python-ai-service): pass --previous") {
			t.Errorf("mixed versions: %s", r)
		}
		r = f.deploy(t, f.args(fresh, "v1.1.0", "--dry-run", "--previous", "v1.0.0")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Previous:       v1.0.0 (given with --previous)") ||
			!strings.Contains(r.stdout, "its tag is resolved again at rollback time") {
			t.Errorf("--previous: %s", r)
		}
	})

	t.Run("rollback returns the digests that ran, not the moved tag", func(t *testing.T) {
		const moved = "botcore-e2e-moved"
		f.pushRelease(t, bin, "v1.5.0", nil, signedBy(priv))
		if r := f.deploy(t, f.args(moved, "v1.5.0")...); r.code != 0 {
			t.Fatal(r)
		}
		// The tag v1.5.0 now names other (validly signed) images: resolving
		// it at rollback time would bring those up instead of what ran.
		for _, s := range deployServices {
			srv.Tag(t, srv.Host+"/bot/"+s, "v1.5.0", f.rels["v1.1.0"][s])
		}
		r := f.deploy(t, f.args(moved, "v1.2.0")...)
		if r.code != 1 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stderr, "deploy of v1.2.0 failed: service python-ai-service is unhealthy",
			"rolling back to v1.5.0, the digests that ran before", "rolled back to v1.5.0, which is running and healthy")
		f.checkRunning(t, moved, "v1.5.0") // the digests pushed as v1.5.0, not the tag's new target
		st := f.state(t, moved)
		f.checkState(t, st.Running, "v1.5.0", true)
	})

	t.Run("-s deploys the services compose starts with it", func(t *testing.T) {
		// rust-core-engine depends on python-ai-service: `compose up
		// rust-core-engine` starts both, so both are verified and pinned.
		deps := filepath.Join(dir, "depends.yml")
		withDeps := strings.Replace(deployCompose, "    restart: unless-stopped\n    environment:",
			"    restart: unless-stopped\n    depends_on:\n      python-ai-service:\n        condition: service_healthy\n    environment:", 1)
		if err := os.WriteFile(deps, []byte(withDeps), 0o644); err != nil {
			t.Fatal(err)
		}
		const depProject = "botcore-e2e-deps"
		args := func(version string, extra ...string) []string {
			a := f.args(depProject, version, append([]string{"--services", "rust-core-engine"}, extra...)...)
			setFlag(a, "--compose-file", deps)
			return a
		}
		r := f.deploy(t, args("v1.1.0", "--dry-run")...)
		if r.code != 0 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stdout, "python-ai-service (needed by rust-core-engine)", f.rels["v1.1.0"]["python-ai-service"],
			"up --detach --pull never python-ai-service rust-core-engine")

		// The dependency's image of v1.4.0 is signed by another key: the
		// whole deploy is refused though only rust-core-engine was named.
		r = f.deploy(t, args("v1.4.0")...)
		if r.code != 1 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stderr, "refusing to deploy v1.4.0: the signature of 1 of 2 images does not verify",
			"python-ai-service ("+srv.Host+"/bot/python-ai-service:v1.4.0")
		if cs := f.containers(t, depProject); len(cs) != 0 {
			t.Errorf("the refused deploy started containers: %v", cs)
		}

		r = f.deploy(t, args("v1.1.0")...)
		if r.code != 0 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stderr, "verified python-ai-service", "python-ai-service: healthy", "rust-core-engine: healthy")
		f.checkRunning(t, depProject, "v1.1.0")
	})

	t.Run("a stack started by plain docker compose rolls back to what ran", func(t *testing.T) {
		const plain = "botcore-e2e-plain"
		// latest names v1.1.0 when the operator starts the stack...
		for _, s := range deployServices {
			srv.Tag(t, srv.Host+"/bot/"+s, "latest", f.rels["v1.1.0"][s])
		}
		out, err := f.composeUp(t, plain, "latest")
		if err != nil {
			t.Fatalf("docker compose up: %v\n%s", err, out)
		}
		// ...and the broken release is tagged latest too, as a release does.
		for _, s := range deployServices {
			srv.Tag(t, srv.Host+"/bot/"+s, "latest", f.rels["v1.2.0"][s])
		}
		if _, err := os.Stat(deploy.StateFile(f.compose, plain)); err == nil {
			t.Fatal("a state file exists before botcore deployed the project")
		}
		r := f.deploy(t, f.args(plain, "v1.2.0", "--dry-run")...)
		if r.code != 0 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stdout, "Previous:       latest (read from the running containers' com.bot-core.version label)",
			"running now:  python-ai-service "+srv.Host+"/bot/python-ai-service@"+f.rels["v1.1.0"]["python-ai-service"]+" (not deployed by botcore")

		r = f.deploy(t, f.args(plain, "v1.2.0")...)
		if r.code != 1 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stderr, "deploy of v1.2.0 failed: service python-ai-service is unhealthy",
			"verified python-ai-service", "rolled back to latest, which is running and healthy")
		cs := f.containers(t, plain)
		for _, s := range deployServices {
			want := srv.Host + "/bot/" + s + "@" + f.rels["v1.1.0"][s]
			if c := cs[s]; c.image != want || c.health != "healthy" || c.version != "latest" {
				t.Errorf("%s after the rollback: %+v, want %s healthy", s, c, want)
			}
		}
		st := f.state(t, plain)
		f.checkState(t, st.Running, "v1.1.0", true) // verified during the rollback
	})

	t.Run("release credentials never reach another registry", func(t *testing.T) {
		pub := newPublicRegistry(t, registrytest.NewBasic(t))
		cacheDigest := pub.upstream.Push(t, pub.upstream.Host+"/library/cache:7", dockertest.AppIndex(t, bin, "cache", "7", false))
		third := filepath.Join(dir, "third-party.yml")
		withCache := deployCompose + `  cache:
    image: ` + pub.host + `/library/cache:7
    restart: unless-stopped
    labels:
      com.bot-core.version: ${VERSION}
    healthcheck:
      test: ["CMD", "/app", "healthcheck"]
      interval: 1s
      timeout: 3s
      retries: 2
`
		if err := os.WriteFile(third, []byte(withCache), 0o644); err != nil {
			t.Fatal(err)
		}
		const thirdProject = "botcore-e2e-third"
		args := f.args(thirdProject, "v1.1.0")
		setFlag(args, "--compose-file", third)
		r := f.deploy(t, append(slices.Clone(args), "--dry-run")...)
		if r.code != 0 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stdout, "DOCKER_USERNAME/DOCKER_PASSWORD (or cloud credentials) for "+srv.Host+" only",
			pub.host+"/library/cache:7", cacheDigest, "NOT verified: third-party image, pinned only")
		r = f.deploy(t, args...)
		if r.code != 0 {
			t.Fatal(r)
		}
		wantAll(t, r, r.stderr, "not verifying "+pub.host+"/library/cache:7: a third-party image")
		cs := f.containers(t, thirdProject)
		if c := cs["cache"]; c.image != pub.host+"/library/cache@"+cacheDigest || c.health != "healthy" {
			t.Errorf("cache: %+v", c)
		}
		// The registry saw botcore resolve the image and dockerd pull it,
		// both answering its challenge, and neither with a password.
		var botcoreSaw, dockerdSaw bool
		for _, req := range pub.requests() {
			if strings.HasPrefix(req.auth, "Basic ") {
				t.Errorf("%s %s from %q carried basic credentials %q", req.method, req.path, req.agent, req.auth)
			}
			if strings.Contains(req.path, "/manifests/") && req.auth == "Bearer "+publicToken {
				botcoreSaw = botcoreSaw || strings.Contains(req.agent, "botcore")
				dockerdSaw = dockerdSaw || strings.Contains(req.agent, "docker/")
			}
		}
		if !botcoreSaw || !dockerdSaw {
			t.Errorf("manifest requests seen: botcore %v, dockerd %v: %+v", botcoreSaw, dockerdSaw, pub.requests())
		}

		// With DOCKER_REGISTRY only in the env file (the operator exports
		// nothing but the credentials), it still names the one registry
		// they are for: resolving the release needs them.
		envFile := filepath.Join(dir, "registry.env")
		if err := os.WriteFile(envFile, []byte("GREETING=hello from the env file\nDOCKER_REGISTRY="+srv.Host+"/bot\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		env := maps.Clone(f.env)
		delete(env, "DOCKER_REGISTRY")
		r = botcore(t, env, "", append(slices.Clone(args), "--dry-run", "--env-file", envFile)...)
		if r.code != 0 || !strings.Contains(r.stdout, "DOCKER_USERNAME/DOCKER_PASSWORD (or cloud credentials) for "+srv.Host+" only") {
			t.Errorf("DOCKER_REGISTRY from the env file: %s", r)
		}
	})
}

// state reads the deploy state of project.
func (f *deployFixture) state(t *testing.T, project string) *deploy.State {
	t.Helper()
	st, err := deploy.LoadState(deploy.StateFile(f.compose, project))
	if err != nil || st == nil {
		t.Fatalf("state of %s: %v, %v", project, st, err)
	}
	return st
}

// checkState asserts rel holds the digests pushed for version, each
// verified or not.
func (f *deployFixture) checkState(t *testing.T, rel *deploy.Release, version string, verified bool) {
	t.Helper()
	if rel == nil {
		t.Fatalf("no release recorded, want %s", version)
	}
	got := map[string]string{}
	for _, img := range rel.Images {
		got[img.Service] = img.Digest
		if img.Verified != verified {
			t.Errorf("%s of %s: verified %v, want %v", img.Service, version, img.Verified, verified)
		}
	}
	if !maps.Equal(got, map[string]string(f.rels[version])) {
		t.Errorf("recorded %v, want %s's %v", got, version, f.rels[version])
	}
}

// composeUp starts project with plain `docker compose up`, the way an
// operator might before using botcore, with the registry's credentials in
// a docker config of its own.
func (f *deployFixture) composeUp(t *testing.T, project, version string) (string, error) {
	t.Helper()
	cfg := t.TempDir()
	if err := os.Symlink(filepath.Join(f.eng.ConfigDir, "cli-plugins"), filepath.Join(cfg, "cli-plugins")); err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte(f.srv.User + ":" + f.srv.Password))
	if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"auths":{"`+f.srv.Host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// Plain compose cannot read the label an image declares its health
	// check in: the operator's file names the test, as docker-compose.prod.yml does.
	tests := filepath.Join(cfg, "tests.yml")
	if err := os.WriteFile(tests, []byte("services:\n  python-ai-service:\n    healthcheck:\n      test: [\"CMD\", \"/app\", \"healthcheck\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker", "compose", "--project-name", project, "--file", f.compose, "--file", tests, "up", "--detach", "--wait")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "DOCKER_HOST=" + f.eng.Host, "DOCKER_CONFIG=" + cfg,
		"DOCKER_REGISTRY=" + f.srv.Host + "/bot", "VERSION=" + version}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// publicToken is the token publicRegistry hands to anyone.
const publicToken = "anonymous-pull"

// publicRegistry is a third-party registry like Docker Hub: it challenges
// every request for a bearer token and gives one to anonymous clients too,
// so a client holding credentials for it would send them (to the token
// endpoint) while one without gets by. It records every Authorization
// header it receives, and serves upstream's content.
type publicRegistry struct {
	host     string
	upstream *registrytest.Server
	mu       sync.Mutex
	seen     []seenRequest
}

type seenRequest struct{ method, path, auth, agent string }

func newPublicRegistry(t *testing.T, upstream *registrytest.Server) *publicRegistry {
	p := &publicRegistry{upstream: upstream}
	target, err := url.Parse(upstream.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, seenRequest{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.UserAgent()})
		p.mu.Unlock()
		if r.URL.Path == "/token" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"token": publicToken, "expires_in": 300})
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+publicToken {
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+p.host+`/token",service="public"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.SetBasicAuth(upstream.User, upstream.Password)
		r.Host = target.Host
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

func (p *publicRegistry) requests() []seenRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

// TestDeployUsage covers what needs no engine: the flags that must (not)
// exist and the policy checks.
func TestDeployUsage(t *testing.T) {
	dir := t.TempDir()
	compose := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(compose, []byte(deployCompose), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOME": dir, "DOCKER_HOST": "unix://" + filepath.Join(dir, "nobody.sock")}
	base := []string{"deploy", "--version", "v1.0.0", "--compose-file", compose}

	if r := botcore(t, env, "", "deploy", "--compose-file", compose); r.code != 2 || !strings.Contains(r.stderr, "--version") {
		t.Errorf("without --version: %s", r)
	}
	if r := botcore(t, env, "", append(base, "--skip-verify")...); r.code != 2 || !strings.Contains(r.stderr, "unknown flag --skip-verify") {
		t.Errorf("--skip-verify must not exist: %s", r)
	}
	if r := botcore(t, env, "", "deploy", "--version", "latest", "--key", "k.pub"); r.code == 0 || !strings.Contains(r.stderr, "latest") {
		t.Errorf("a non-release version: %s", r)
	}
	r := botcore(t, env, "", base...)
	if r.code != 1 || !strings.Contains(r.stderr, "give the key (--key) or the expected signer") {
		t.Errorf("no verification policy: %s", r)
	}
	r = botcore(t, env, "", append(base, "--insecure-skip-verify", "--key", "k.pub")...)
	if r.code == 0 || !strings.Contains(r.stderr, "--insecure-skip-verify contradicts") {
		t.Errorf("--insecure-skip-verify with --key: %s", r)
	}
	r = botcore(t, env, "", append(base, "--insecure-skip-verify")...)
	if r.code != 1 || !strings.Contains(r.stderr, "WARNING: --insecure-skip-verify: image signatures will NOT be verified") ||
		!strings.Contains(r.stderr, "no Docker engine to deploy to") {
		t.Errorf("--insecure-skip-verify without an engine: %s", r)
	}
	r = botcore(t, env, "", "deploy", "--version", "v1.0.0", "--compose-file", filepath.Join(dir, "missing.yml"), "--insecure-skip-verify")
	if r.code != 1 || !strings.Contains(r.stderr, "compose file "+filepath.Join(dir, "missing.yml")) {
		t.Errorf("missing compose file: %s", r)
	}
	r = botcore(t, env, "", append(base, "--insecure-skip-verify", "--env-file", filepath.Join(dir, "missing.env"))...)
	if r.code != 1 || !strings.Contains(r.stderr, "env file "+filepath.Join(dir, "missing.env")) {
		t.Errorf("missing explicit env file: %s", r)
	}
}
