// Command testapp is the tiny static service the deploy tests run in a real
// Docker engine: `testapp serve` answers GET /health on :8080 (200 "ok", or
// 503 when the environment sets BROKEN=1, so Docker's healthcheck marks the
// container unhealthy) and exits at once on SIGTERM; `testapp healthcheck`
// is the healthcheck command (exit 0 when /health answers 200).
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const addr = "127.0.0.1:8080"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testapp serve|healthcheck")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve()
	case "healthcheck":
		os.Exit(healthcheck())
	default:
		fmt.Fprintf(os.Stderr, "testapp: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func serve() {
	broken := os.Getenv("BROKEN") == "1"
	version := os.Getenv("APP_VERSION")
	http.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		if broken {
			http.Error(w, "broken build "+version, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok "+version)
	})
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		// PID 1 gets no default signal handling: stop promptly on SIGTERM.
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	fmt.Printf("testapp %s listening on %s (broken=%v)\n", version, addr, broken)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func healthcheck() int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/health")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
