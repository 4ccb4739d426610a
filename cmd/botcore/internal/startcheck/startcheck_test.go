package startcheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the service under check: with
// STARTCHECK_SERVICE set it behaves as that mode says and never runs tests.
// With the argument "probe" it is a health command: GET /health on $PORT.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == "probe" {
		resp, err := http.Get("http://127.0.0.1:" + os.Getenv("PORT") + "/health")
		if err != nil {
			fmt.Println("probe:", err)
			os.Exit(1)
		}
		fmt.Println("probe: the service said", resp.Status)
		if resp.StatusCode >= 400 {
			os.Exit(1)
		}
		os.Exit(0)
	}
	switch mode := os.Getenv("STARTCHECK_SERVICE"); mode {
	case "":
		os.Exit(m.Run())
	case "crash":
		for i := range 30 {
			fmt.Printf("starting step %d\n", i)
		}
		fmt.Fprintln(os.Stderr, "Traceback: ModuleNotFoundError: No module named 'app'")
		os.Exit(3)
	default: // "healthy" or "unhealthy", after a delay
		time.Sleep(300 * time.Millisecond)
		status := http.StatusOK
		if mode == "unhealthy" {
			status = http.StatusServiceUnavailable
		}
		fmt.Println("listening on", os.Getenv("PORT"))
		_ = http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/health" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(status)
		}))
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func check(t *testing.T, mode, path string, timeout time.Duration) (Check, func() bool) {
	port := freePort(t)
	t.Setenv("STARTCHECK_SERVICE", mode)
	t.Setenv("PORT", strconv.Itoa(port))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	portFree := func() bool {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			l.Close()
		}
		return err == nil
	}
	return Check{Command: []string{exe}, Port: port, Path: path, Timeout: timeout, Interval: 50 * time.Millisecond}, portFree
}

func TestHealthyServiceIsStoppedAfterwards(t *testing.T) {
	c, portFree := check(t, "healthy", "/health", 20*time.Second)
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusOK || res.After < 300*time.Millisecond {
		t.Errorf("result %+v: want 200 after the service's start-up delay", res)
	}
	if !portFree() {
		t.Error("the service still listens after the check: it was not stopped")
	}
}

func TestFailures(t *testing.T) {
	for _, c := range []struct {
		mode, path string
		want       []string
	}{
		{"crash", "/health", []string{"it exited (status 3)", "before answering GET /health", "No module named 'app'", "starting step 29"}},
		{"unhealthy", "/health", []string{"did not answer GET /health on port", "within 2s", "503 Service Unavailable", "listening on"}},
		{"healthy", "/nope", []string{"did not answer GET /nope", "404 Not Found"}},
	} {
		t.Run(c.mode+c.path, func(t *testing.T) {
			chk, portFree := check(t, c.mode, c.path, 2*time.Second)
			_, err := Run(context.Background(), chk)
			var f *Failure
			if !errors.As(err, &f) {
				t.Fatalf("Run = %v, want a *Failure", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the failure does not say %q:\n%v", w, err)
				}
			}
			if len(f.Log) > 20 {
				t.Errorf("%d log lines kept, want the last 20", len(f.Log))
			}
			if !portFree() {
				t.Error("the service still runs after a failed check")
			}
		})
	}
}

func TestHealthCommand(t *testing.T) {
	c, portFree := check(t, "healthy", "", 20*time.Second)
	c.Probe = []string{c.Command[0], "probe"}
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Answer != "probe: the service said 200 OK" || res.After < 300*time.Millisecond {
		t.Errorf("result %+v: want the probe's own words after the service's start-up delay", res)
	}
	if !portFree() {
		t.Error("the service still listens after the check")
	}

	c, _ = check(t, "unhealthy", "", 2*time.Second)
	c.Probe = []string{c.Command[0], "probe"}
	_, err = Run(context.Background(), c)
	for _, w := range []string{"its health check " + c.Command[0] + " probe did not pass within 2s", "(last: status 1: probe: the service said 503 Service Unavailable)", "listening on"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("an unhealthy service's check: %v, want it to say %q", err, w)
		}
	}

	c, _ = check(t, "crash", "", 2*time.Second)
	c.Probe = []string{"/bin/true"}
	if _, err = Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "it exited (status 3)") {
		t.Errorf("a crashing service's check: %v", err)
	}
}

func TestNoCommand(t *testing.T) {
	if _, err := Run(context.Background(), Check{Port: 1, Path: "/"}); err == nil || !strings.Contains(err.Error(), "neither an entrypoint nor a command") {
		t.Fatalf("Run without a command = %v", err)
	}
	_, err := Run(context.Background(), Check{Command: []string{"/no/such/program"}, Port: 1, Path: "/", Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), `could not start "/no/such/program"`) {
		t.Fatalf("Run of a missing program = %v", err)
	}
}
