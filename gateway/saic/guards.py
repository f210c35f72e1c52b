"""What keeps one account from hammering a sick or rate-capping SAIC API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RateLimiter:
    """A token bucket: `rate` calls per second on average, bursts of up to `burst`; rate 0 = unlimited."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self.burst)
        self._updated = clock()
        self._lock = asyncio.Lock()
        self.waited = 0.0
        """Seconds callers have waited in all, for the gateway's lateness reports."""

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        arrived = self._clock()
        try:
            await self._take()
        finally:
            self.waited += self._clock() - arrived

    async def _take(self) -> None:
        async with self._lock:  # waiters are served in arrival order
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


class CircuitOpen(Exception):
    """Calls are suspended after repeated API failures; the message says for how long."""


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `cooldown` one trial call is let through.

    A failed trial reopens it with twice the cooldown (up to `max_cooldown`); a success closes it.
    """

    def __init__(
        self, threshold: int, cooldown: float, max_cooldown: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self._clock = clock
        self.failures = 0
        self._cooldown = cooldown
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def before_call(self) -> None:
        """Raise CircuitOpen unless a call may go out now."""
        if self._opened_at is None:
            return
        remaining = self._opened_at + self._cooldown - self._clock()
        if remaining > 0 or self._trial_running:
            wait = max(remaining, 0.0)
            raise CircuitOpen(
                f"SAIC API calls suspended after {self.failures} consecutive failures; next attempt in {wait:.0f}s"
            )
        self._trial_running = True

    def record_success(self) -> None:
        self.failures = 0
        self._opened_at = None
        self._trial_running = False
        self._cooldown = self.base_cooldown

    def record_failure(self) -> None:
        self.failures += 1
        if self._trial_running:
            self._cooldown = min(self._cooldown * 2, self.max_cooldown)
            self._opened_at = self._clock()
        elif self.failures >= self.threshold and self._opened_at is None:
            self._opened_at = self._clock()
        self._trial_running = False

    def record_neutral(self) -> None:
        """A call that says nothing about the API's health (the car refused, we were logged out)."""
        if self._trial_running:
            self.record_success()
