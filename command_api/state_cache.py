"""Latest-state reads from memory, kept true by PostgreSQL itself.

A vehicle's read (`GET /api/vehicles/{vin}`, the first message of its live stream) is cached as the
response's bytes. Every statement that changes `vehicles` or `vehicle_state` notifies
`vehicle_state_changed` (migration 0009's triggers); notifications are delivered only when the
writing transaction commits, to every API replica listening, and each one then forgets what it
cached. So a read never shows less than the database has committed, a restarted API starts empty,
and until the listener is connected (or while it is down) every read goes to the database.

Why not the MQTT values the API receives for the live stream: they run up to a flush ahead of the
database, and the latest-state rule (a newer reading wins, a reading dated by the car beats one
dated by its arrival) would have to be written a second time here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

from common.backoff import Backoff
from common.database import DATABASE_ERRORS

log = logging.getLogger(__name__)

CHANNEL = "vehicle_state_changed"
MAX_ENTRIES = 5_000
"""Beyond this many vehicles the cache starts over: memory stays bounded (a few KiB a vehicle)."""

type Loader = Callable[[], Awaitable[bytes | None]]
type Listener = Callable[[Any, int, str, str], None]


class LatestStateCache:
    def __init__(self) -> None:
        self._bodies: dict[str, bytes] = {}
        self._generation = 0
        self.listening = False
        """True while the listener is connected: only then may a read be answered from memory."""
        self.sessions = 0
        """How many times the listener has connected."""
        self.hits = 0
        self.misses = 0

    async def get(self, vin: str, load: Loader) -> bytes | None:
        """The vehicle's body from memory, or from `load` (None: no such vehicle, not cached)."""
        body = self._bodies.get(vin) if self.listening else None
        if body is not None:
            self.hits += 1
            return body
        self.misses += 1
        generation = self._generation
        body = await load()
        # A change committed while the database was being read may not be in what it returned.
        if body is not None and self.listening and generation == self._generation:
            if len(self._bodies) >= MAX_ENTRIES:
                self._bodies.clear()
            self._bodies[vin] = body
        return body

    @property
    def generation(self) -> int:
        """How many times the cache has been forgotten (a change heard, or the listener restarted)."""
        return self._generation

    def forget(self) -> None:
        self._generation += 1
        self._bodies.clear()

    async def listen(self, pool: asyncpg.Pool, also: Mapping[str, Callable[[str], None]] | None = None) -> None:
        """Hold a connection listening on CHANNEL until cancelled; reconnect when it drops. `also`:
        other channels to hear on the same connection, each with what to call with a payload."""
        listeners = {channel: _payload_to(callback) for channel, callback in (also or {}).items()}
        backoff = Backoff(initial=0.5, maximum=15)
        while True:
            try:
                async with pool.acquire() as conn:
                    await self._listen_on(conn, backoff, listeners)
            except DATABASE_ERRORS as exc:
                self._stop_listening()
                delay = backoff.next_delay()
                log.warning("latest-state cache off: cannot listen for changes (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    async def _listen_on(self, conn: Any, backoff: Backoff, also: dict[str, Listener]) -> None:
        """Until the connection drops (or the task is cancelled)."""
        lost = asyncio.Event()

        def on_lost(_conn: Any) -> None:
            lost.set()

        conn.add_termination_listener(on_lost)
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
            for channel, listener in also.items():
                await conn.add_listener(channel, listener)
            self.forget()  # whatever changed while nobody listened
            self.listening = True
            self.sessions += 1
            backoff.reset()
            await lost.wait()
        finally:
            self._stop_listening()
            conn.remove_termination_listener(on_lost)
            if not conn.is_closed():
                with contextlib.suppress(*DATABASE_ERRORS):
                    await conn.remove_listener(CHANNEL, self._on_notify)
                    for channel, listener in also.items():
                        await conn.remove_listener(channel, listener)

    def _stop_listening(self) -> None:
        self.listening = False
        self.forget()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, _payload: str) -> None:
        self.forget()


def _payload_to(callback: Callable[[str], None]) -> Listener:
    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        callback(payload)

    return on_notify
