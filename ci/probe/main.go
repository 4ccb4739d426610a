// Command botcore-probe is the health check the pipeline puts into every
// image whose service declares an HTTP health path (services.yaml health:).
// Runtime images often have no shell, curl or wget, and the service's own
// code should not need a healthcheck subcommand, so the image carries this:
// a static binary that sends one GET and exits 0 when the status is below
// 400, 1 otherwise (with the reason on stderr), 2 on a usage error.
//
// It speaks just enough HTTP/1.1 to read a status line, and links no HTTP
// client: the stripped binary is about two megabytes.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// timeout bounds the whole probe; compose's own timeout is the outer bound.
const timeout = 5 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "usage: botcore-probe http://127.0.0.1:PORT/PATH (exits 0 when GET answers below 400)")
		return 2
	}
	status, err := get(args[0], timeout)
	if err != nil {
		fmt.Fprintf(stderr, "botcore-probe: %v\n", err)
		return 1
	}
	if status >= 400 {
		fmt.Fprintf(stderr, "botcore-probe: GET %s answered %d\n", args[0], status)
		return 1
	}
	fmt.Fprintf(stdout, "GET %s answered %d\n", args[0], status)
	return 0
}

// get sends GET rawURL and returns the answer's status code.
func get(rawURL string, timeout time.Duration) (int, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return 0, fmt.Errorf("%q is not an http:// URL", rawURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUser-Agent: botcore-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return 0, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("GET %s: no answer: %w", rawURL, err)
	}
	// The status line: HTTP/1.1 200 OK
	proto, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
	code, _, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if !strings.HasPrefix(proto, "HTTP/") || err != nil || len(code) != 3 {
		return 0, fmt.Errorf("GET %s: not an HTTP answer: %q", rawURL, strings.TrimSpace(line))
	}
	return status, nil
}
