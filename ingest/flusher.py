"""The periodic flush: cache changes to the database; while it is down, to the disk spool.

Spooled batches are written back, oldest first, before anything newer once the database returns;
the writes are idempotent, so a batch written twice (a crash between write and delete) does no harm.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ingest.cache import TelemetryCache, VehicleSnapshot
from ingest.dead_letters import DeadLetters
from ingest.devices import DeviceInbox
from ingest.rows import FlushResult
from ingest.sink import Sink, SinkError
from ingest.spool import Spool, snapshot_to_json
from ingest.wal import WriteAheadLog

log = logging.getLogger(__name__)

MAX_HELD_SNAPSHOTS = 200_000
"""Bound on snapshots held in memory when neither the database nor the spool takes them."""


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside. A flush of 10,000 cars builds some 200,000 containers (its
    snapshots, rows, readings) that all die when it ends, none of them in a cycle: CPython's
    collector rescanned them as they piled up, a tenth of a steady flush and a fifth of a cold one
    (docs/benchmarks.md). Whatever the rest of the program leaves in cycles meanwhile is collected
    after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Flusher:
    def __init__(
        self,
        cache: TelemetryCache,
        sink: Sink,
        spool: Spool,
        dead_letters: DeadLetters | None = None,
        wal: WriteAheadLog | None = None,
        devices: DeviceInbox | None = None,
    ) -> None:
        self.wal = wal
        self.devices = devices if devices is not None else DeviceInbox()
        self.device_rows = 0
        self._lock = asyncio.Lock()
        self.cache = cache
        self.sink = sink
        self.spool = spool
        self.dead_letters = dead_letters if dead_letters is not None else DeadLetters()
        self._held: list[VehicleSnapshot] = []
        self.flushes = 0
        self.failures = 0
        self.state_rows = 0
        self.telemetry_rows = 0
        self.spooled_batches = 0
        self.replayed_batches = 0
        self.refused_snapshots = 0
        self.last_duration = 0.0
        self.last_result: FlushResult | None = None
        self._outage: tuple[float, int] | None = None
        """While flushes fail: when the first failed, and how many have."""

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def failing(self) -> bool:
        """The last flush failed: the database is away (its batch went to the spool or is held)."""
        return self._outage is not None

    async def flush(self) -> FlushResult | None:
        """One flush at a time (the schedule and an early flush may ask at once), and never cut in
        half: a flush cancelled midway (the scheduler cancels its running jobs when it shuts down)
        would have taken its batch from the cache without writing it. The final flush waits for it."""
        return await asyncio.shield(self._flush_alone())

    async def _flush_alone(self) -> FlushResult | None:
        async with self._lock:
            with collector_paused():
                return await self._flush()

    async def _flush(self) -> FlushResult | None:
        # Rotate and take in one step (no await between): the closed segments hold exactly the
        # messages in this batch and in the batches before it that are not stored yet.
        segments = self.wal.rotate() if self.wal else []
        batch = self._held + self.cache.take_changes()
        rejected = self.dead_letters.take()
        reports = self.devices.take()
        if not batch and not rejected and not reports and not self.spool.files():
            self._release(segments)  # nothing unstored in them
            return None
        started = time.perf_counter()
        try:
            await self._replay_spool()
            result = await self._write(batch)
            await self.sink.write_dead_letters(rejected)
            self.device_rows += await self.sink.write_device_reports(reports)
        except Exception as exc:
            # A SinkError is the database being away or refusing; anything else is a defect, and
            # still must not cost the batch: it was taken from the cache already.
            if not isinstance(exc, SinkError):
                log.exception("flush failed unexpectedly; its batch is kept")
            self.failures += 1
            self.dead_letters.put_back(rejected)
            self.devices.put_back(reports)
            # Device reports wait in memory, not in the spool: their write-ahead log stays until stored.
            self._keep(batch, str(exc) or type(exc).__name__, segments if not len(self.devices) else [])
            return None
        if self._outage is not None:
            since, failed = self._outage
            log.warning("the database takes writes again after %d failed flushes over %.0f s", failed, started - since)
            self._outage = None
        self.dead_letters.recorded += len(rejected)
        self._held = []
        self._release(segments)
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

    async def _write(self, batch: list[VehicleSnapshot]) -> FlushResult:
        try:
            return await self.sink.write(batch)
        except SinkError as exc:
            if not exc.permanent:
                raise
            log.error("the database refused a batch of %d snapshots (%s); writing them one by one", len(batch), exc)
        # One snapshot the database refuses must not hold back the others for ever: write each on
        # its own and set aside (dead letters, with the reason) those refused.
        vehicles = states = history = 0
        for snapshot in batch:
            try:
                result = await self.sink.write([snapshot])
            except SinkError as exc:
                if not exc.permanent:
                    raise
                self.refused_snapshots += 1
                payload = json.dumps(snapshot_to_json(snapshot)).encode()
                self.dead_letters.add(datetime.now(UTC), f"snapshot/{snapshot.vin}", payload, str(exc))
                continue
            vehicles += result.vehicles
            states += result.state_rows
            history += result.telemetry_rows
        return FlushResult(vehicles, states, history)

    async def _replay_spool(self) -> None:
        for path, spooled in self.spool.batches():
            result = await self._write(spooled)
            self.spool.remove(path)
            self.replayed_batches += 1
            self.state_rows += result.state_rows
            self.telemetry_rows += result.telemetry_rows
            log.info("wrote back a spooled batch of %d snapshots (%d left)", len(spooled), len(self.spool.files()))

    def _release(self, segments: list[Path]) -> None:
        if self.wal is not None:
            self.wal.release(segments)

    def _keep(self, batch: list[VehicleSnapshot], error: str, segments: list[Path]) -> None:
        # One line for an outage, however many flushes it fails: when it starts, and when it ends.
        first = self._outage is None
        since, failed = self._outage or (time.perf_counter(), 0)
        self._outage = (since, failed + 1)
        if batch and self.spool.append(batch):
            self.spooled_batches += 1
            self._held = []
            self._release(segments)
            if first:
                log.error("flush failed (%s); spooling to disk until the database takes writes again", error)
            return
        if len(batch) > MAX_HELD_SNAPSHOTS:
            log.error(
                "dropping %d oldest held snapshots: neither the database nor the spool takes them",
                len(batch) - MAX_HELD_SNAPSHOTS,
            )
        self._held = batch[-MAX_HELD_SNAPSHOTS:]
        if first:
            log.error("flush of %d snapshots failed (%s); kept in memory, retrying at each flush", len(batch), error)
