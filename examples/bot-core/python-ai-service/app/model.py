"""A toy, deterministic trading "model": a moving-average crossover.

The price series is a seeded random walk derived from the symbol, so the same
symbol always yields the same prediction on every machine and Python version
(only ``random.Random.random`` is used, whose sequence for a given integer
seed Python guarantees to keep stable).
"""

import hashlib
import math
import random
import re

MODEL = "sma-crossover"
MODEL_VERSION = "1"
FAST_WINDOW = 10
SLOW_WINDOW = 30
HISTORY = 120
# The fast average must lead the slow one by this fraction to call a trend.
THRESHOLD = 0.002

_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")


def normalize_symbol(raw):
    """Returns the upper-cased symbol, or None if it is not 2-20 letters/digits."""
    if raw is None:
        return None
    symbol = raw.strip().upper()
    return symbol if _SYMBOL_RE.match(symbol) else None


def _seed(symbol):
    return int.from_bytes(hashlib.sha256(symbol.encode("ascii")).digest()[:8], "big")


def price_series(symbol, length=HISTORY):
    """A geometric random walk whose start, drift and volatility depend on the symbol."""
    rng = random.Random(_seed(symbol))
    price = 10 ** (rng.random() * 4.5)  # between 1 and ~31,600
    drift = (rng.random() - 0.5) * 0.004
    volatility = 0.005 + rng.random() * 0.025
    prices = []
    for _ in range(length):
        # Irwin-Hall: the sum of 12 uniforms minus 6 is close to a standard normal.
        shock = sum(rng.random() for _ in range(12)) - 6.0
        price *= math.exp(drift + volatility * shock)
        prices.append(price)
    return prices, volatility


def sma(values, window, end=None):
    """Simple moving average of the `window` values ending before index `end`."""
    end = len(values) if end is None else end
    chunk = values[end - window:end]
    return sum(chunk) / window


def _round(x):
    return float(f"{x:.6g}")


def predict(symbol):
    """Predicts BUY, SELL or HOLD for a normalized symbol."""
    prices, volatility = price_series(symbol)
    fast, slow = sma(prices, FAST_WINDOW), sma(prices, SLOW_WINDOW)
    prev_fast = sma(prices, FAST_WINDOW, len(prices) - 1)
    prev_slow = sma(prices, SLOW_WINDOW, len(prices) - 1)

    spread = (fast - slow) / slow
    if spread > THRESHOLD:
        signal = "BUY"
    elif spread < -THRESHOLD:
        signal = "SELL"
    else:
        signal = "HOLD"
    crossed = (fast > slow) != (prev_fast > prev_slow)
    # Confidence grows with the spread measured against the series' volatility.
    confidence = 1.0 - math.exp(-abs(spread) / (3 * volatility))
    if signal == "HOLD":
        confidence = 1.0 - confidence

    return {
        "symbol": symbol,
        "signal": signal,
        "confidence": round(min(confidence, 0.99), 4),
        "crossover": crossed,
        "price": _round(prices[-1]),
        "sma_fast": _round(fast),
        "sma_slow": _round(slow),
        "model": {
            "name": MODEL,
            "version": MODEL_VERSION,
            "fast_window": FAST_WINDOW,
            "slow_window": SLOW_WINDOW,
            "history": HISTORY,
        },
    }
