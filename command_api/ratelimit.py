"""Token buckets per key (a user, a vehicle): 429 with `Retry-After` when one is empty."""

from __future__ import annotations

import math
import time

from command_api.errors import ApiError

MAX_KEYS = 100_000
"""Full buckets are forgotten beyond this many keys: memory stays bounded."""


class KeyedRateLimiter:
    def __init__(self, per_minute: int, what: str) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(per_minute)
        self.what = what
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def take(self, key: str) -> None:
        """Spend one token or raise 429 saying when to retry."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            retry_after = math.ceil((1 - tokens) / self.rate)
            self._buckets[key] = (tokens, now)
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests for this {self.what}: at most {self.burst:.0f} per minute; retry in {retry_after}s",
                {"retry_after": retry_after},
                {"Retry-After": str(retry_after)},
            )
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > MAX_KEYS:
            self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        for key, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * self.rate >= self.burst:
                del self._buckets[key]
