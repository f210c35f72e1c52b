"""Drives, charges and parks on a real PostgreSQL: derived live by the sink, across a restart in the
middle of a drive, a replayed batch and a late one, and compared with a rebuild from history."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from common.database import Connection, create_pool
from common.settings import DatabaseSettings
from gateway.simulator import Phase, make_vehicle
from ingest.cache import VehicleSnapshot
from ingest.period_store import LOCK_VEHICLES, never_derived, rebuild
from ingest.periods import PeriodSettings
from ingest.postgres_sink import PostgresSink
from tests.helpers import wait_until

SETTINGS = PeriodSettings.from_env({})
START = datetime(2026, 11, 30, 6, 0, tzinfo=UTC).timestamp()
STEP = 5.0


def simulated_day(index: int, hours: float) -> list[tuple[VehicleSnapshot, Phase]]:
    """What the simulated car reports every 5 s: it drives, parks and charges on its own."""
    now = [START]
    car = make_vehicle(index, seed=7, clock=lambda: now[0])
    car.soc = 35.0  # low enough to charge within the window
    out = []
    for _ in range(int(hours * 3600 / STEP)):
        now[0] += STEP
        car.advance()
        values = car.readings()
        ts = datetime.fromtimestamp(now[0], UTC)
        out.append((VehicleSnapshot(car.vin, "acct", ts, ts, False, values, frozenset(values)), car.phase))
    return out


def flushes_a_minute_apart(cars: list[list[tuple[VehicleSnapshot, Phase]]]) -> list[list[VehicleSnapshot]]:
    """Every car's readings, batched as one flush a minute would take them."""
    return [[snap for car in cars for snap, _ in car[i : i + 12]] for i in range(0, len(cars[0]), 12)]


async def periods(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    result = {}
    for table in ("drives", "charges", "parks"):
        rows = await conn.fetch(f"SELECT * FROM {table} ORDER BY vin, start_ts")
        result[table] = [{k: v for k, v in dict(r).items() if k != "id"} for r in rows]
    return result


async def assert_live_equals_a_rebuild(pool: asyncpg.Pool) -> None:
    """What was derived live (some drives among it) is what a rebuild from the stored history gives."""
    async with pool.acquire() as conn:
        live = await periods(conn)
        assert live["drives"]
        await rebuild(conn, SETTINGS)
        assert await periods(conn) == live


@pytest.fixture
async def pool(db_settings: DatabaseSettings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_settings)
    yield pool
    await pool.close()


async def test_live_derivation_survives_a_restart_mid_drive_and_equals_a_rebuild(
    db_settings: DatabaseSettings, pool: asyncpg.Pool
) -> None:
    cars = [simulated_day(i, hours=4) for i in range(2)]
    # The restart falls in the middle of one of the first car's drives.
    driving = [i for i, (_, phase) in enumerate(cars[0]) if phase is Phase.DRIVING]
    restart_at = next(i for i in driving[len(driving) // 3 :] if cars[0][i + 6][1] is Phase.DRIVING)
    batches = flushes_a_minute_apart(cars)
    restart_batch = restart_at // 12
    late_batch = restart_batch + 40

    sink = await PostgresSink.connect(db_settings, SETTINGS)
    await sink.ready()
    for batch in batches[:restart_batch]:
        await sink.write(batch)
    await sink.close()  # the ingest restarts in the middle of a drive

    sink = await PostgresSink.connect(db_settings, SETTINGS)
    await sink.write(batches[restart_batch - 1])  # the last batch again: a replay after the crash
    for i, batch in enumerate(batches[restart_batch:], start=restart_batch):
        if i != late_batch:
            await sink.write(batch)
    await sink.write(batches[late_batch])  # a spooled batch written back after later ones
    await sink.close()

    async with pool.acquire() as conn:
        live = await periods(conn)
        restart_ts = cars[0][restart_at][0].ts
        spanning = [
            d for d in live["drives"] if d["vin"] == cars[0][0][0].vin and d["start_ts"] < restart_ts < d["end_ts"]
        ]
        assert len(spanning) == 1, "the drive under way at the restart must be one drive, not two"
        closed = {t: [r for r in rows if not r["in_progress"]] for t, rows in live.items()}
        assert all(closed.values()), {t: len(r) for t, r in closed.items()}
        assert all(d["distance_km"] > 0 and d["max_speed_kmh"] > 0 for d in closed["drives"])
        assert all(c["energy_added_kwh"] > 0 and c["energy_source"] == "power" for c in closed["charges"])

        await rebuild(conn, SETTINGS)
        assert await periods(conn) == live

    # Each vehicle's periods tile its timeline: no overlap, no hole.
    for vin in {c[0][0].vin for c in cars}:
        mine = sorted((p for rows in live.values() for p in rows if p["vin"] == vin), key=lambda p: p["start_ts"])
        for before, after in itertools.pairwise(mine):
            assert after["start_ts"] == before["end_ts"]


async def test_replaying_every_batch_adds_nothing(db_settings: DatabaseSettings, pool: asyncpg.Pool) -> None:
    car = [snap for snap, _ in simulated_day(0, hours=1)]
    sink = await PostgresSink.connect(db_settings, SETTINGS)
    await sink.ready()
    for i in range(0, len(car), 12):
        await sink.write(car[i : i + 12])
    async with pool.acquire() as conn:
        before = await periods(conn)
        for i in range(0, len(car), 60):
            await sink.write(car[i : i + 60])
        assert await periods(conn) == before
    await sink.close()


async def test_batches_of_stored_and_new_readings_derive_from_the_new_ones_as_a_rebuild(
    db_settings: DatabaseSettings, pool: asyncpg.Pool
) -> None:
    """The sink derives while the history statement runs, as if every reading were new; a batch that
    also holds readings stored before (a spooled batch overlapping the live ones) is derived again
    from the new ones alone."""
    cars = [[snap for snap, _ in simulated_day(i, hours=2)] for i in range(2)]
    sink = await PostgresSink.connect(db_settings, SETTINGS)
    await sink.ready()
    for i in range(0, len(cars[0]), 12):
        await sink.write(cars[0][max(0, i - 6) : i + 12] + cars[1][i : i + 12])  # car 0: 6 stored, 12 new
    await sink.close()
    await assert_live_equals_a_rebuild(pool)


async def test_two_replicas_taking_turns_on_a_vehicle_each_go_on_from_the_others_state(
    db_settings: DatabaseSettings, pool: asyncpg.Pool
) -> None:
    """A replica must derive on from the state the other one wrote since its own last flush, not
    from where it last was: that would tear the drive apart."""
    cars = [simulated_day(i, hours=2) for i in range(2)]
    batches = flushes_a_minute_apart(cars)
    replicas = [await PostgresSink.connect(db_settings, SETTINGS) for _ in range(2)]
    await replicas[0].ready()
    for i, batch in enumerate(batches):
        await replicas[(i // 3) % 2].write(batch)  # three flushes each, in turn
    for replica in replicas:
        await replica.close()
    await assert_live_equals_a_rebuild(pool)


async def test_a_flush_and_a_rebuild_of_one_vehicle_wait_for_each_other(
    db_settings: DatabaseSettings, pool: asyncpg.Pool
) -> None:
    """Two derivations of one vehicle at once would each write the state they started from: a flush,
    a rebuild and another ingest replica take the vehicle's lock first."""
    car = [snap for snap, _ in simulated_day(0, hours=1)]
    sink = await PostgresSink.connect(db_settings, SETTINGS)
    await sink.ready()
    await sink.write(car[:12])
    async with pool.acquire() as holder, pool.acquire() as other:
        for work in (lambda: sink.write(car[12:24]), lambda: rebuild(other, SETTINGS)):
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute(LOCK_VEHICLES, [car[0].vin])
            task = asyncio.create_task(work())
            await asyncio.sleep(0.5)
            assert not task.done(), "derived while another derivation of the vehicle was under way"
            await transaction.commit()
            await asyncio.wait_for(task, 10)
    await sink.close()


async def test_history_stored_before_derivation_is_derived_once_at_start(
    db_settings: DatabaseSettings, pool: asyncpg.Pool
) -> None:
    """An upgrade: the history of an earlier version, never derived. The ingest derives it in the
    background while its flushes go on, and the result is what a rebuild gives."""
    car = [snap for snap, _ in simulated_day(0, hours=2)]
    batches = [car[i : i + 12] for i in range(0, len(car), 12)]
    earlier = await PostgresSink.connect(db_settings)  # an ingest that did not derive
    await earlier.ready()
    for batch in batches[:600]:
        await earlier.write(batch)
    await earlier.close()

    sink = await PostgresSink.connect(db_settings, SETTINGS)
    await sink.ready()
    for batch in batches[600:]:
        await sink.write(batch)
    await wait_until(lambda: sink._backfill is not None and sink._backfill.done(), what="the backfill")
    await sink.close()
    async with pool.acquire() as conn:
        live = await periods(conn)
        assert live["drives"][0]["start_ts"] == car[0].ts  # from the very first stored reading
        await rebuild(conn, SETTINGS)
        assert await periods(conn) == live
        assert not await never_derived(conn)
