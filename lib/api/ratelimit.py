"""Per-client rate limiting: a token bucket for each client address.

The default (50 requests a second, bursts of 200) never bothers a person or a
script that polls every second, and throttles a burst of 1,000 requests in
two seconds. ``--rate-limit RATE[/BURST]`` changes it; ``--rate-limit off``
disables it (for benchmarks).

Requests without a valid token are charged to buckets of their own (one per
client address, apart from that address's authenticated bucket): a flood of
404s or token guesses from loopback throttles only itself, never the operator's
``modelctl`` on the same host.
"""

import threading
import time

from lib.errors import RateLimitedError

DEFAULT = "50/200"
MAX_CLIENTS = 10_000


class ConfigError(ValueError):
    pass


def parse_setting(text):
    """``"RATE[/BURST]"`` -> ``(rate, burst)``; ``"off"`` -> ``None``."""
    if text is None:
        text = DEFAULT
    if text.lower() in ("off", "0", "none"):
        return None
    rate_text, _, burst_text = text.partition("/")
    try:
        rate = float(rate_text)
        burst = float(burst_text) if burst_text else max(1.0, rate * 2)
    except ValueError:
        raise ConfigError("--rate-limit takes RATE[/BURST] (like 50/200) or off") from None
    if not (0 < rate <= 1e6 and 1 <= burst <= 1e7):
        raise ConfigError("--rate-limit: RATE must be above 0, BURST at least 1")
    return rate, burst


def from_setting(text):
    parsed = parse_setting(text)
    return None if parsed is None else RateLimiter(*parsed)


class RateLimiter:
    """Token buckets keyed by client; ``check(environ)`` raises ``RateLimitedError``."""

    def __init__(self, rate, burst, clock=time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.buckets = {}
        self.lock = threading.Lock()

    def check(self, environ, authenticated=True):
        client = environ.get("REMOTE_ADDR") or "unix"
        key = (client, authenticated)
        now = self.clock()
        with self.lock:
            tokens, last = self.buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self.buckets[key] = (tokens, now)
                wait = (1 - tokens) / self.rate
                raise RateLimitedError(
                    "too many requests from %s%s: retry in %.1fs"
                    % (client, "" if authenticated else " without a valid token", wait),
                    retry_after=wait,
                )
            self.buckets[key] = (tokens - 1, now)
            if len(self.buckets) > MAX_CLIENTS:
                self._forget_idle(now)

    def _forget_idle(self, now):
        full_after = self.burst / self.rate
        for key, (_, last) in list(self.buckets.items()):
            if now - last > full_after:
                del self.buckets[key]
