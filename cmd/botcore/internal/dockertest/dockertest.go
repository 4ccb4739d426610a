// Package dockertest runs a real Docker engine for tests: its own dockerd on a
// private socket under /tmp, with its own data and exec roots, that neither
// touches iptables nor enables IP forwarding (so it cannot disturb the Dagger
// engine or anything else on the host), plus the Compose v2 CLI plugin.
//
// What is missing is installed first by hack/docker/install.sh: Debian's
// docker.io (apt) and the compose plugin (built from the Go module proxy and
// cached under /var/cache/bot-core/tools). Tests are skipped only when the
// machine cannot run dockerd at all (not root); any other failure fails them.
//
// Cleanup removes every container and network the test left, stops dockerd
// (and the containerd it started) and deletes its directories.
package dockertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// Engine is a running dockerd.
type Engine struct {
	// Host is the DOCKER_HOST value, unix://<dir>/docker.sock.
	Host string
	// Dir holds the socket, data root, exec root and log.
	Dir string
	// ConfigDir is a DOCKER_CONFIG directory whose cli-plugins holds the
	// compose plugin, so `docker compose` works with it.
	ConfigDir string
	// Compose is the path of the compose plugin binary.
	Compose string
	// Client talks to the engine.
	Client *client.Client

	cmd  *exec.Cmd
	done chan error
}

// Env is the environment a docker CLI (or botcore) needs to use the engine.
func (e *Engine) Env() map[string]string {
	return map[string]string{
		"DOCKER_HOST":   e.Host,
		"DOCKER_CONFIG": e.ConfigDir,
		"PATH":          os.Getenv("PATH"),
	}
}

// Start installs what is missing, starts dockerd and registers its cleanup.
func Start(t testing.TB) *Engine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("dockertest: cannot run dockerd: it needs root and the test runs as uid %d", os.Geteuid())
	}
	compose := install(t)

	dir, err := os.MkdirTemp("/tmp", "bcdk") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{Dir: dir, Host: "unix://" + filepath.Join(dir, "docker.sock"), Compose: compose, done: make(chan error, 1)}
	e.ConfigDir = filepath.Join(dir, "config")
	if err := os.MkdirAll(filepath.Join(e.ConfigDir, "cli-plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(compose, filepath.Join(e.ConfigDir, "cli-plugins", "docker-compose")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.ConfigDir, "config.json"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()

	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		dockerd = "/usr/sbin/dockerd" // root's PATH may lack sbin
	}
	e.cmd = exec.Command(dockerd, e.Args()...)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	// Its own process group, so a Ctrl-C of `go test` reaches the test's
	// cleanup rather than killing dockerd under its containers.
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := e.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("dockertest: cannot start dockerd: %v", err)
	}
	go func() { e.done <- e.cmd.Wait() }()
	t.Cleanup(func() { e.stop(t) })

	e.Client, err = client.NewClientWithOpts(client.WithHost(e.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := e.Client.Ping(ctx, client.PingOptions{})
		cancel()
		if err == nil {
			break
		}
		select {
		case werr := <-e.done:
			e.done <- werr
			t.Fatalf("dockertest: dockerd exited (%v) before answering:\n%s", werr, e.LogTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockertest: dockerd did not answer on %s within 60s: %v\n%s", e.Host, err, e.LogTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("dockertest: dockerd up on %s in %s", e.Host, time.Since(start).Round(time.Millisecond))
	return e
}

// Args are dockerd's arguments: everything under Dir, its own parent
// cgroup, no iptables rules, no IP forwarding or masquerading, no default
// bridge. Containers still get
// their user-defined (compose) networks; they only cannot reach outside,
// which the tests do not need (images are pulled by dockerd itself).
func (e *Engine) Args() []string {
	return []string{
		"--config-file", filepath.Join(e.Dir, "daemon.json"),
		"--data-root", filepath.Join(e.Dir, "data"),
		"--exec-root", filepath.Join(e.Dir, "exec"),
		"--pidfile", filepath.Join(e.Dir, "dockerd.pid"),
		"--host", e.Host,
		"--iptables=false",
		"--ip-forward=false",
		"--ip-masq=false",
		"--bridge=none",
		"--cgroup-parent", e.cgroupParent(),
		"--log-level=warn",
	}
}

// cgroupParent is the engine's own parent cgroup (rather than the shared
// /docker), removed with the engine.
func (e *Engine) cgroupParent() string { return "/" + filepath.Base(e.Dir) }

// removeCgroups deletes the (by then empty) parent cgroup in every
// hierarchy: cgroup v1 controllers, or the v2 unified tree.
func (e *Engine) removeCgroups(t testing.TB) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + e.cgroupParent())
	dirs = append(dirs, "/sys/fs/cgroup"+e.cgroupParent())
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Logf("dockertest: removing cgroup %s: %v", d, err)
		}
	}
}

// LogTail is the end of dockerd's log, for failure messages.
func (e *Engine) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(e.Dir, "dockerd.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Docker runs the docker CLI against the engine and returns its combined
// output.
func (e *Engine) Docker(args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.Host, "DOCKER_CONFIG="+e.ConfigDir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *Engine) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if e.Client != nil {
		if res, err := e.Client.ContainerList(ctx, client.ContainerListOptions{All: true}); err == nil {
			for _, c := range res.Items {
				if _, err := e.Client.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
					t.Logf("dockertest: removing container %s: %v", c.ID[:12], err)
				}
			}
		}
		// dockerd leaves the Linux bridges of user-defined networks behind
		// when it stops: remove the networks while it runs.
		if res, err := e.Client.NetworkList(ctx, client.NetworkListOptions{}); err == nil {
			for _, n := range res.Items {
				switch n.Name {
				case "bridge", "host", "none":
					continue
				}
				if _, err := e.Client.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil {
					t.Logf("dockertest: removing network %s: %v", n.Name, err)
				}
			}
		}
		_ = e.Client.Close()
	}
	if e.cmd != nil && e.cmd.Process != nil {
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.done:
		case <-time.After(30 * time.Second):
			t.Logf("dockertest: dockerd did not stop within 30s of SIGTERM; killing it")
			_ = e.cmd.Process.Kill()
			<-e.done
		}
	}
	unmountUnder(t, e.Dir)
	e.removeCgroups(t)
	if err := os.RemoveAll(e.Dir); err != nil {
		t.Logf("dockertest: removing %s: %v", e.Dir, err)
	}
}

// unmountUnder detaches whatever is still mounted below dir (a dockerd that
// was killed can leave overlay, shm and netns mounts).
func unmountUnder(t testing.TB, dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var targets []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			targets = append(targets, f[1])
		}
	}
	for i := len(targets) - 1; i >= 0; i-- {
		if err := syscall.Unmount(targets[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Logf("dockertest: unmounting %s: %v", targets[i], err)
		}
	}
}

// install runs hack/docker/install.sh, which installs docker.io when
// dockerd is missing and builds the compose plugin when it is not cached, and
// returns the compose plugin's path.
func install(t testing.TB) string {
	t.Helper()
	script, err := findUp("hack/docker/install.sh")
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	var out, errOut bytes.Buffer
	cmd := exec.Command(script)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("dockertest: %s failed: %v\n%s", script, err, errOut.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Logf("dockertest: %s took %s:\n%s", script, d.Round(time.Second), lastLines(errOut.String(), 5))
	}
	lines := strings.Fields(out.String())
	if len(lines) == 0 {
		t.Fatalf("dockertest: %s printed no compose path:\n%s", script, errOut.String())
	}
	return lines[len(lines)-1]
}

func findUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found above the working directory", rel)
		}
		dir = parent
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
