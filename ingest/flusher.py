"""The periodic flush: cache changes to the database, keeping a failed batch for the next try."""

from __future__ import annotations

import logging
import time

import asyncpg

from ingest.cache import TelemetryCache, VehicleSnapshot
from ingest.sink import FlushResult, write_snapshots

log = logging.getLogger(__name__)

MAX_HELD_SNAPSHOTS = 200_000
"""Bound on snapshots held across failed flushes, so that memory stays bounded while the database is down."""

DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class Flusher:
    def __init__(self, cache: TelemetryCache, pool: asyncpg.Pool) -> None:
        self.cache = cache
        self.pool = pool
        self._held: list[VehicleSnapshot] = []
        self.flushes = 0
        self.failures = 0
        self.state_rows = 0
        self.telemetry_rows = 0
        self.last_duration = 0.0
        self.last_result: FlushResult | None = None

    async def flush(self) -> FlushResult | None:
        batch = self._held + self.cache.take_changes()
        if not batch:
            return None
        started = time.perf_counter()
        try:
            async with self.pool.acquire() as conn:
                result = await write_snapshots(conn, batch)
        except DATABASE_ERRORS as exc:
            self.failures += 1
            if len(batch) > MAX_HELD_SNAPSHOTS:
                log.error(
                    "dropping %d oldest held snapshots: the database has been down too long",
                    len(batch) - MAX_HELD_SNAPSHOTS,
                )
            self._held = batch[-MAX_HELD_SNAPSHOTS:]
            log.error(
                "flush of %d snapshots failed (%s: %s); retrying at the next flush", len(batch), type(exc).__name__, exc
            )
            return None
        self._held = []
        self.last_duration = time.perf_counter() - started
        self.flushes += 1
        self.state_rows += result.state_rows
        self.telemetry_rows += result.telemetry_rows
        self.last_result = result
        log.debug(
            "flushed %d vehicles: %d state rows, %d telemetry rows in %.1f ms",
            result.vehicles,
            result.state_rows,
            result.telemetry_rows,
            self.last_duration * 1000,
        )
        return result

    @property
    def held(self) -> int:
        return len(self._held)
