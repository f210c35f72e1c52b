"""How many polls run at once, up to `GATEWAY_POLL_CONCURRENCY`, following how the API answers.

A cycle needs the polls due per second times how long one takes in flight (Little's law), and the
API's latency and event-id waits decide the second factor. The limit starts small and doubles each
round trip that polls start late, until the first failure; a failure halves it, after which it grows
by a quarter a round trip while polls are late (TCP's slow start, then AIMD). The round trip is how
long a poll holds its slot, smoothed as TCP smooths its RTT, and at most a second: a change shows its
effect once the polls it let in have answered. So a start-up does not send the whole fleet's first
polls at once (the acceptance run's 1,000 at once failed 634 and opened the breaker), and a failing
API is asked less.

Lateness alone cannot tell a slow API from a busy gateway: when the gateway's own CPU is what
holds polls back, more in flight only adds work (measured: 1,000 cars at 50 ms a call hold 5 s
with a ceiling of 50, and gap 14 s at 100 % CPU with 256). Hence the ceiling stays a setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator

ADJUST_EVERY = 1.0
"""The longest wait between two changes of the limit (before any poll answered, the wait)."""
INITIAL = 8
SMOOTHING = 1 / 8
"""The weight of a new round trip in the smoothed one (TCP's SRTT gain)."""


class PollSlots:
    def __init__(self, ceiling: int, initial: int = INITIAL) -> None:
        self.ceiling = ceiling
        self.limit = max(1, min(initial, ceiling))
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._slow_start = True
        self._changed_at = -ADJUST_EVERY
        self._round_trip: float | None = None

    async def acquire(self) -> None:
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the slot is handed over with the result: in_use already counts it
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over just as we were cancelled: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.in_use -= 1
        self._hand_over()

    def started_late(self) -> None:
        """A poll started later than due: more in flight would have started it on time."""
        if self._may_change():
            grown = self.limit * 2 if self._slow_start else self.limit + max(1, self.limit // 4)
            self.limit = min(self.ceiling, grown)
            self._hand_over()

    def failed(self) -> None:
        """The API failed a poll (refused, timed out, down): ask less of it."""
        self._slow_start = False
        if self._may_change():
            self.limit = max(1, self.limit // 2)

    def _may_change(self) -> bool:
        now = time.monotonic()
        wait = ADJUST_EVERY if self._round_trip is None else min(ADJUST_EVERY, self._round_trip)
        if now - self._changed_at < wait:
            return False
        self._changed_at = now
        return True

    def _hand_over(self) -> None:
        while self._waiters and self.in_use < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_use += 1
                waiter.set_result(None)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for one poll, and learn the round trip from how long it was held."""
        await self.acquire()
        started = time.monotonic()
        try:
            yield
        finally:
            held, before = time.monotonic() - started, self._round_trip
            self._round_trip = held if before is None else before + (held - before) * SMOOTHING
            self.release()
