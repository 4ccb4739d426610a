package sigstoretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Fulcio is a running Fulcio server with an ephemeral (in-memory,
// self-signed) CA and no CT log, trusting one Issuer.
type Fulcio struct {
	// URL is "http://127.0.0.1:<port>", for --fulcio-url.
	URL string
	// RootPEM is the CA chain from /api/v1/rootCert; RootFile holds it, for
	// --ca-roots and SIGSTORE_ROOT_FILE.
	RootPEM  []byte
	RootFile string
	Issuer   *Issuer

	cmd  *exec.Cmd
	logs *syncBuffer
}

// startTimeout bounds how long Fulcio may take to answer after starting.
const startTimeout = 60 * time.Second

// StartFulcio starts Fulcio (building it on first use) on a free 127.0.0.1
// port, waits until it serves its root certificate, and stops it at test
// cleanup. Its log is printed if the test fails.
func StartFulcio(t testing.TB, issuer *Issuer) *Fulcio {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bin, err := FulcioBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := map[string]any{"OIDCIssuers": map[string]any{
		issuer.URL: map[string]any{"IssuerURL": issuer.URL, "ClientID": Audience, "Type": "email"},
	}}
	cfgPath := filepath.Join(dir, "fulcio-config.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // free ports can be taken between probe and bind
		f, err := startFulcio(t, bin, cfgPath, dir)
		if err == nil {
			f.Issuer = issuer
			return f
		}
		lastErr = err
	}
	t.Fatalf("starting Fulcio: %v", lastErr)
	return nil
}

func startFulcio(t testing.TB, bin, cfgPath, dir string) (f *Fulcio, err error) {
	var ports [3]int // HTTP, gRPC, metrics
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	p := strconv.Itoa(ports[0])
	// Separate HTTP and gRPC ports: Fulcio 1.8's single-port "duplex"
	// server panics registering its metrics twice. The legacy gRPC socket
	// gets a unique abstract name, since the fixed default clashes between
	// parallel instances.
	args := []string{"serve",
		"--ca", "ephemeralca",
		"--config-path", cfgPath,
		"--host", "127.0.0.1", "--port", p,
		"--grpc-host", "127.0.0.1", "--grpc-port", strconv.Itoa(ports[1]),
		"--metrics-port", strconv.Itoa(ports[2]),
		"--legacy-unix-domain-socket", fmt.Sprintf("@botcore-fulcio-%d-%d", os.Getpid(), ports[0]),
		"--ct-log-url", "",
		"--log_type", "prod",
	}
	logs := &syncBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logs, logs
	// Fulcio reads FULCIO_SERVE_* from the environment; keep the process's
	// own settings out of it.
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	f = &Fulcio{URL: "http://127.0.0.1:" + p, cmd: cmd, logs: logs}
	deadline := time.Now().Add(startTimeout)
	for {
		root, err := fetchRoot(f.URL)
		if err == nil {
			f.RootPEM = root
			break
		}
		select {
		case werr := <-exited:
			return nil, fmt.Errorf("fulcio exited (%v) before serving:\n%s", werr, tail(logs.String(), 4000))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("fulcio did not serve %s/api/v1/rootCert within %s (%v):\n%s", f.URL, startTimeout, err, tail(logs.String(), 4000))
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("fulcio log:\n%s", tail(logs.String(), 8000))
		}
	})
	f.RootFile = filepath.Join(dir, "fulcio-root.pem")
	if err := os.WriteFile(f.RootFile, f.RootPEM, 0o644); err != nil {
		return nil, err
	}
	return f, nil
}

// Logs is what Fulcio printed so far.
func (f *Fulcio) Logs() string { return f.logs.String() }

func fetchRoot(base string) ([]byte, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}} // not the test's DefaultTransport
	resp, err := client.Get(base + "/api/v1/rootCert")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, body)
	}
	return body, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("not a TCP address")
	}
	return addr.Port, nil
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
