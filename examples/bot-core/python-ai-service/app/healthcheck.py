"""Container healthcheck: ``python3 -m app.healthcheck``.

Exits 0 if GET http://127.0.0.1:$PORT/health answers 200, else 1.
"""

import http.client
import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORT = 8000


def check(port, timeout=3.0):
    url = f"http://127.0.0.1:{port}/health"
    # No proxies: an http_proxy in the container's environment must not
    # route this loopback request elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        print(f"healthcheck failed: {url}: {exc}", file=sys.stderr)
        return False


def main():
    try:
        port = int(os.environ.get("PORT", "").strip() or DEFAULT_PORT)
    except ValueError:
        print("healthcheck failed: invalid PORT", file=sys.stderr)
        return 1
    return 0 if check(port) else 1


if __name__ == "__main__":
    sys.exit(main())
