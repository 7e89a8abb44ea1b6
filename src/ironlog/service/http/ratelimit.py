"""Per-key token buckets (per worker process)."""

from __future__ import annotations

import math
import threading
import time

from ironlog.errors import RateLimitedError


class RateLimiter:
    """``rate`` requests per second per key, bursts up to ``burst``; 0 = off."""

    def __init__(self, rate: float, burst: float | None = None, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate * 2)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def check(self, key_id: str, cost: float = 1.0) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < cost:
                self._buckets[key_id] = (tokens, now)
                wait = (cost - tokens) / self.rate
                raise RateLimitedError(
                    f"rate limit of {self.rate:g} requests/s for this key exceeded",
                    retry_after=max(1, math.ceil(wait)),
                )
            self._buckets[key_id] = (tokens - cost, now)
            if len(self._buckets) > self._max_keys:
                self._buckets.pop(next(iter(self._buckets)))
