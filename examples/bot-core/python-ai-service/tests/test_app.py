"""End-to-end tests: a real server on an ephemeral loopback port.

Run from the service directory: python3 -m unittest discover -s tests
"""

import json
import os
import socket
import threading
import unittest
import urllib.error
import urllib.request
from unittest import mock

from app import healthcheck, model
from app.main import Handler, make_server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.quiet = mock.patch.object(Handler, "log_message")
        cls.quiet.start()
        cls.server = make_server("127.0.0.1", 0)
        cls.port = cls.server.server_address[1]
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        cls.thread.join(timeout=5)
        cls.quiet.stop()

    def get(self, path):
        """Returns (status, headers, parsed JSON body)."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with self.opener.open(url, timeout=5) as resp:
                return resp.status, resp.headers, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.headers, json.loads(err.read())

    def raw(self, data):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(data)
            chunks = []
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")

    def test_health(self):
        with mock.patch.dict(os.environ, {"VERSION": "1.2.3"}):
            status, headers, body = self.get("/health")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(body, {"status": "ok", "service": "python-ai-service", "version": "1.2.3"})

    def test_health_version_defaults_to_dev(self):
        env = {k: v for k, v in os.environ.items() if k != "VERSION"}
        with mock.patch.dict(os.environ, env, clear=True):
            _, _, body = self.get("/health")
        self.assertEqual(body["version"], "dev")

    def test_predict(self):
        status, _, body = self.get("/predict?symbol=BTCUSDT")
        self.assertEqual(status, 200)
        self.assertEqual(body["symbol"], "BTCUSDT")
        self.assertIn(body["signal"], {"BUY", "SELL", "HOLD"})
        self.assertGreaterEqual(body["confidence"], 0.0)
        self.assertLessEqual(body["confidence"], 0.99)
        self.assertGreater(body["price"], 0)
        self.assertEqual(body["model"]["name"], "sma-crossover")
        self.assertEqual(body["service"], "python-ai-service")

    def test_predict_is_deterministic_and_case_insensitive(self):
        _, _, first = self.get("/predict?symbol=ETHUSDT")
        _, _, again = self.get("/predict?symbol=ethusdt")
        self.assertEqual(first, again)

    def test_predict_rejects_bad_symbols(self):
        for path in ("/predict", "/predict?symbol=", "/predict?symbol=BTC-USDT",
                     "/predict?symbol=" + "A" * 21):
            with self.subTest(path=path):
                status, _, body = self.get(path)
                self.assertEqual(status, 400)
                self.assertIn("symbol", body["error"])

    def test_unknown_path_is_404(self):
        status, _, body = self.get("/nope")
        self.assertEqual(status, 404)
        self.assertEqual(body["status"], 404)

    def test_post_is_405(self):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/health", data=b"x",
                                     method="POST")
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            self.opener.open(req, timeout=5)
        with ctx.exception as err:
            self.assertEqual(err.code, 405)
            self.assertEqual(err.headers["Allow"], "GET, HEAD")

    def test_malformed_request_is_json_400(self):
        out = self.raw(b"GARBAGE / HTTP/9.9 extra\r\n\r\n")
        head, _, body = out.partition("\r\n\r\n")
        self.assertTrue(head.startswith("HTTP/1.1 400 "), out)
        self.assertEqual(json.loads(body)["status"], 400)

    def test_head_has_no_body(self):
        out = self.raw(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = out.partition("\r\n\r\n")
        self.assertTrue(head.startswith("HTTP/1.1 200 "), out)
        self.assertEqual(body, "")

    def test_healthcheck_module(self):
        with mock.patch.dict(os.environ, {"PORT": str(self.port)}):
            self.assertEqual(healthcheck.main(), 0)

    def test_healthcheck_fails_without_server(self):
        with mock.patch.dict(os.environ, {"PORT": str(free_port())}), \
                mock.patch("sys.stderr"):
            self.assertEqual(healthcheck.main(), 1)


class ModelTest(unittest.TestCase):
    def test_known_values_are_stable(self):
        # Pinned so a change to the model (or to Python's random) is noticed.
        prices, _ = model.price_series("BTCUSDT")
        self.assertEqual(len(prices), model.HISTORY)
        got = model.predict("BTCUSDT")
        self.assertEqual(
            (got["signal"], got["confidence"], got["price"], got["sma_fast"], got["sma_slow"]),
            ("SELL", 0.7031, 3.2406, 3.16954, 3.51099),
        )
        self.assertEqual(got, model.predict("BTCUSDT"))

    def test_symbols_differ(self):
        self.assertNotEqual(model.price_series("BTCUSDT"), model.price_series("ETHUSDT"))

    def test_sma(self):
        self.assertEqual(model.sma([1, 2, 3, 4], 2), 3.5)
        self.assertEqual(model.sma([1, 2, 3, 4], 2, end=3), 2.5)

    def test_normalize_symbol(self):
        self.assertEqual(model.normalize_symbol(" btcusdt "), "BTCUSDT")
        self.assertIsNone(model.normalize_symbol(None))
        self.assertIsNone(model.normalize_symbol("B"))
        self.assertIsNone(model.normalize_symbol("BTC/USDT"))


if __name__ == "__main__":
    unittest.main()
