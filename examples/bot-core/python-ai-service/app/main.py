"""HTTP entry point: ``python3 -m app.main`` serves on 0.0.0.0:$PORT (default 8000)."""

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from app import SERVICE
from app.model import normalize_symbol, predict

DEFAULT_PORT = 8000


def version():
    return os.environ.get("VERSION", "").strip() or "dev"


def port_from_env():
    raw = os.environ.get("PORT", "").strip()
    if not raw:
        return DEFAULT_PORT
    port = int(raw)
    if not 0 <= port <= 65535:
        raise ValueError(f"PORT out of range: {raw}")
    return port


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Seconds a client may take to send its request before the socket times out.
    timeout = 10

    def version_string(self):
        return SERVICE

    def do_GET(self):
        self._dispatch(head_only=False)

    def do_HEAD(self):
        self._dispatch(head_only=True)

    def _method_not_allowed(self):
        self._send_json(405, {"error": "method not allowed", "status": 405},
                        extra_headers={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _method_not_allowed

    def _dispatch(self, head_only):
        url = urlsplit(self.path)
        if url.path == "/health":
            body = {"status": "ok", "service": SERVICE, "version": version()}
            self._send_json(200, body, head_only=head_only)
        elif url.path == "/predict":
            query = parse_qs(url.query)
            symbol = normalize_symbol(query.get("symbol", [None])[0])
            if symbol is None:
                self._send_json(400, {
                    "error": "query parameter 'symbol' must be 2-20 letters or digits, "
                             "e.g. /predict?symbol=BTCUSDT",
                    "status": 400,
                }, head_only=head_only)
                return
            body = predict(symbol)
            body["service"] = SERVICE
            body["version"] = version()
            self._send_json(200, body, head_only=head_only)
        elif url.path == "/":
            self._send_json(200, {
                "service": SERVICE,
                "version": version(),
                "endpoints": ["/health", "/predict?symbol=BTCUSDT"],
            }, head_only=head_only)
        else:
            self._send_json(404, {"error": "not found", "status": 404}, head_only=head_only)

    def _send_json(self, status, body, head_only=False, extra_headers=None):
        data = (json.dumps(body, separators=(",", ":")) + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.close_connection = True
        if not head_only:
            self.wfile.write(data)

    def send_error(self, code, message=None, explain=None):
        # Called by the base class for malformed requests (400, 414, 431, 501...):
        # answer in JSON like every other response.
        text = message or self.responses.get(code, ("error",))[0]
        if not str(self.request_version).startswith("HTTP/1."):
            # An unparsable request line leaves the version at HTTP/0.9, which
            # would suppress the status line; answer in HTTP/1.1 regardless.
            self.request_version = self.protocol_version
        try:
            self._send_json(code, {"error": text, "status": code},
                            head_only=self.command == "HEAD")
        except OSError:
            self.close_connection = True

    def log_message(self, format, *args):
        # Container healthchecks hit /health every few seconds; keep them out of the log.
        path = getattr(self, "path", None)
        if isinstance(path, str) and path.startswith("/health"):
            return
        sys.stderr.write(f"{self.address_string()} - {format % args}\n")


def make_server(host="0.0.0.0", port=DEFAULT_PORT):
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main():
    try:
        port = port_from_env()
    except ValueError as exc:
        print(f"{SERVICE}: invalid PORT: {exc}", file=sys.stderr)
        return 2
    server = make_server("0.0.0.0", port)

    def stop(signum, _frame):
        # shutdown() blocks until serve_forever returns, so call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, bound_port = server.server_address[:2]
    print(f"{SERVICE} {version()} listening on http://{host}:{bound_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
