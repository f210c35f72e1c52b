"""The fast path: asyncpg; the latest states and the history (with what is derived from it) in two
transactions at once, each through typed arrays (`upsert_vehicle_states`, `upsert_telemetry`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime
from typing import Any

import asyncpg

from common.database import DATABASE_ERRORS, apply_migrations, create_pool
from common.settings import DatabaseSettings
from ingest.cache import VehicleSnapshot
from ingest.dead_letters import DeadLetter
from ingest.devices import DeviceReports
from ingest.period_store import (
    derive_following,
    derive_rewinding,
    lock_and_read_states,
    never_derived,
    readings_by_vehicle,
    rebuild,
    write_derived,
)
from ingest.periods import PeriodSettings, Reading
from ingest.rows import (
    STATE_COLUMNS,
    TELEMETRY_COLUMNS,
    VEHICLE_COLUMNS,
    FlushResult,
    FlushRows,
    columns,
    dumps,
    plan_rows,
)
from ingest.sink import STORED_STATES_PAGE, SinkError, refuses_the_data

log = logging.getLogger(__name__)

# Arrays in PostgreSQL's binary format: nothing for the server to parse but each row's `state`.
UPSERT_VEHICLES = "SELECT upsert_vehicles($1, $2, $3, $4, $5)"
UPSERT_STATES = "SELECT upsert_vehicle_states($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
STATE_MAP = STATE_COLUMNS.index("state")

# Inserts each new reading and completes one a late value belongs to (migration 0010).
UPSERT_TELEMETRY = "SELECT * FROM upsert_telemetry($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"

STORED_STATES = "SELECT stored_vehicle_states($1, $2)::text"

DEVICE_REPORTS = "SELECT ingest_device_reports($1::jsonb, $2::jsonb, $3::jsonb, $4::jsonb)"

INSERT_DEAD_LETTERS = """
INSERT INTO dead_letters (received_at, topic, payload, reason)
SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::bytea[], $4::text[])
"""


def state_arguments(rows: FlushRows) -> list[list[Any]]:
    """`upsert_vehicle_states`'s arguments: a column each, the state documents as JSON."""
    states = columns(rows.states, STATE_COLUMNS)
    states[STATE_MAP] = [dumps(state) for state in states[STATE_MAP]]
    return states


def telemetry_arguments(rows: FlushRows) -> list[list[Any]]:
    """`upsert_telemetry`'s arguments: a column each, the payloads as JSON."""
    telemetry = columns(rows.telemetry, TELEMETRY_COLUMNS)
    telemetry[-1] = [dumps(payload) for payload in telemetry[-1]]
    return telemetry


def _error(exc: BaseException) -> SinkError:
    sqlstate = exc.sqlstate if isinstance(exc, asyncpg.PostgresError) else None
    return SinkError(f"{type(exc).__name__}: {exc}", permanent=refuses_the_data(sqlstate))


class PostgresSink:
    name = "postgres"

    def __init__(self, pool: asyncpg.Pool, periods: PeriodSettings | None = None) -> None:
        self.pool = pool
        self.periods = periods if periods is not None and periods.enabled else None
        """Derive drives, charges and parks in the flush's transaction with these rules (None: off)."""
        self.derived_rows = 0
        self._backfill: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, settings: DatabaseSettings, periods: PeriodSettings | None = None) -> PostgresSink:
        try:
            # No connection floor: during an outage asyncpg would log a traceback each time it tried
            # to restore one; the flusher says once that the database is gone, and once that it is back.
            return cls(await create_pool(settings, min_size=0, max_size=3), periods)
        except DATABASE_ERRORS as exc:
            raise SinkError(f"{type(exc).__name__}: {exc}") from exc

    async def ready(self) -> None:
        try:
            await apply_migrations(self.pool)
            if self.periods is not None and self._backfill is None:
                async with self.pool.acquire() as conn:
                    upgrade = await never_derived(conn)
                if upgrade:  # checked before the first flush derives anything
                    self._backfill = asyncio.create_task(self._derive_earlier_history(self.periods))
        except DATABASE_ERRORS as exc:
            raise SinkError(f"{type(exc).__name__}: {exc}") from exc

    async def _derive_earlier_history(self, periods: PeriodSettings) -> None:
        """History stored before drives and charges were derived (an upgrade): derive it once, in
        the background. Flushes go on meanwhile; the per-vehicle locks keep the two apart."""
        log.warning("history stored before drives and charges were derived: deriving it now")
        try:
            async with self.pool.acquire() as conn:
                counts = await rebuild(conn, periods)
        except DATABASE_ERRORS as exc:
            log.error("deriving the earlier history failed (%s): run `python -m ingest rebuild`", exc)
            return
        log.info("derived the earlier history of %d vehicles from %d readings", len(counts), sum(counts.values()))

    async def write(self, snapshots: list[VehicleSnapshot]) -> FlushResult:
        """The vehicles first (the other tables refer to them), then the latest states and the history
        at once, on two connections: the database merges state documents while this process plans
        the history and derives from it. Each transaction is whole; a batch written again after one
        of them failed changes nothing the other stored (both writes are idempotent)."""
        if not snapshots:
            return FlushResult(0, 0, 0)
        rows = plan_rows(snapshots)
        vehicles = asyncio.ensure_future(self.write_vehicles(rows.vehicles))
        await asyncio.sleep(0)  # the vehicles' statement goes out: the other arguments are built meanwhile
        try:
            state_args = state_arguments(rows) if rows.states else []
            telemetry = telemetry_arguments(rows) if rows.telemetry else []
        finally:
            await vehicles  # never left running
        try:
            states = asyncio.create_task(self._write_states(state_args)) if rows.states else None
            try:
                written = await self._write_history(rows, telemetry) if rows.telemetry else 0
            finally:
                moved = await states if states is not None else 0  # never left running, even on a failure
        except DATABASE_ERRORS as exc:
            raise _error(exc) from exc
        return FlushResult(len(rows.vehicles), moved, written)

    async def write_vehicles(self, vehicles: list[dict[str, Any]]) -> None:
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(UPSERT_VEHICLES, *columns(vehicles, VEHICLE_COLUMNS))
        except DATABASE_ERRORS as exc:
            raise _error(exc) from exc

    async def _write_states(self, states: list[list[Any]]) -> int:
        async with self.pool.acquire() as conn:
            moved: int = await conn.fetchval(UPSERT_STATES, *states)
        return moved

    async def _write_history(self, rows: FlushRows, telemetry: list[list[Any]]) -> int:
        """The history rows (`telemetry`: their arguments) and what is derived from them, in one
        transaction: a reading is derived from exactly when it is inserted."""
        await asyncio.sleep(0)  # let the states' statement go out first: the database starts on it
        async with self.pool.acquire() as conn, conn.transaction():
            if self.periods is None:
                return len(await conn.fetch(UPSERT_TELEMETRY, *telemetry))
            offered = readings_by_vehicle(rows.telemetry)
            stored = await lock_and_read_states(conn, list(offered))
            upsert = asyncio.ensure_future(conn.fetch(UPSERT_TELEMETRY, *telemetry))
            await asyncio.sleep(0)  # the statement goes out: the database inserts while this derives
            try:
                engines, rewind = derive_following(self.periods, stored, offered)
            finally:
                written = await upsert  # never left running
            # Derived as if every reading were new; a reading the statement did not insert (stored
            # already, or only completed by a late value) was derived from before: derive that car
            # again from its stored state with only its new readings.
            new = {(r["vin"], r["ts"]) for r in written if r["inserted"]}
            again: dict[str, list[Reading]] = {}
            for vin in [vin for vin in offered if any((vin, r.ts) not in new for r in offered[vin])]:
                engines.pop(vin, None)
                rewind.pop(vin, None)
                if inserted := [r for r in offered[vin] if (vin, r.ts) in new]:
                    again[vin] = inserted
            if again:
                more, more_rewind = derive_following(self.periods, stored, again)
                engines |= more
                rewind |= more_rewind
            engines |= await derive_rewinding(conn, self.periods, rewind)
            self.derived_rows += await write_derived(conn, self.periods, engines, rows.capacities)
        return len(written)

    async def stored_states_page(self, after_vin: str) -> list[dict[str, Any]]:
        try:
            async with self.pool.acquire() as conn:
                page: list[dict[str, Any]] = json.loads(
                    await conn.fetchval(STORED_STATES, after_vin, STORED_STATES_PAGE)
                )
        except DATABASE_ERRORS as exc:
            raise _error(exc) from exc
        return page

    async def write_dead_letters(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        columns = [[getattr(item, name) for item in letters] for name in ("received_at", "topic", "payload", "reason")]
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(INSERT_DEAD_LETTERS, *columns)
        except DATABASE_ERRORS as exc:
            raise _error(exc) from exc

    async def write_device_reports(self, reports: DeviceReports) -> int:
        if not reports:
            return 0
        documents = [json.dumps(rows, default=datetime.isoformat) for rows in reports.lists()]
        try:
            async with self.pool.acquire() as conn:
                added: int = await conn.fetchval(DEVICE_REPORTS, *documents)
        except DATABASE_ERRORS as exc:
            raise _error(exc) from exc
        return added

    async def close(self) -> None:
        if self._backfill is not None:
            self._backfill.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._backfill
        await self.pool.close()
