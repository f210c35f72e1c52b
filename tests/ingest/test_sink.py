"""The flush rules on a real PostgreSQL, through each sink."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from common import topics
from common.database import apply_migrations, create_pool
from common.settings import DatabaseSettings
from common.values import TelemetryValue
from ingest.cache import VehicleSnapshot
from ingest.periods import PeriodSettings
from ingest.postgres_sink import PostgresSink
from ingest.rows import dumps
from ingest.sink import Sink, SinkError

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def snapshot(
    ts: datetime, changed: set[str] | None = None, vin: str = "VIN1", arrival: bool = False, **values: object
) -> VehicleSnapshot:
    vals = {k.replace("__", "/"): v for k, v in values.items()}
    changes = frozenset(changed if changed is not None else vals)
    return VehicleSnapshot(vin, "acct", ts, ts, arrival, vals, changes)  # type: ignore[arg-type]


@pytest.fixture
async def pool(sink: Sink, db_settings: DatabaseSettings) -> AsyncIterator[asyncpg.Pool]:
    """For reading back what the sink wrote (its migrations are applied)."""
    pool = await create_pool(db_settings)
    yield pool
    await pool.close()


async def test_migrations_are_idempotent(pool: asyncpg.Pool, sink: Sink) -> None:
    assert await apply_migrations(pool) == []
    async with pool.acquire() as conn:
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    assert {"vehicles", "vehicle_state", "vehicle_telemetry", "commands", "user_vehicles"} <= tables


async def test_state_and_history_rows(pool: asyncpg.Pool, sink: Sink) -> None:
    async with pool.acquire() as conn:
        result = await sink.write([snapshot(T0, drivetrain__soc=80.0, doors__locked=True, info__model="ZS EV")])
        state = await conn.fetchrow("SELECT * FROM vehicle_state")
        vehicle = await conn.fetchrow("SELECT * FROM vehicles")
        history = await conn.fetch("SELECT * FROM vehicle_telemetry")
    assert (result.state_rows, result.telemetry_rows) == (1, 1)
    assert state is not None
    assert vehicle is not None
    assert (state["soc"], state["locked"], state["ts"]) == (80.0, True, T0)
    assert json.loads(state["state"])["drivetrain/soc"] == 80.0
    assert vehicle["model"] == "ZS EV"
    assert [(r["vin"], r["ts"], r["soc"]) for r in history] == [("VIN1", T0, 80.0)]


async def test_a_whole_state_is_stored_uncompressed_and_a_huge_one_still_fits(pool: asyncpg.Pool, sink: Sink) -> None:
    """Migration 0016: a typical state (~3 KB) is not pglz-compressed on every flush that moves it;
    one past a page is compressed and moved out of line, as before, and stored whole."""
    typical: dict[str, TelemetryValue] = {f"extra/key{n:02d}": 1000.0 + n for n in range(80)}  # ~3 KB as jsonb
    huge: dict[str, TelemetryValue] = {f"extra/key{n:03d}": "x" * 200 for n in range(100)}  # ~22 KB
    await sink.write(
        [
            VehicleSnapshot(vin, "acct", T0, T0, False, values, frozenset(values))
            for vin, values in (("VIN1", typical), ("VIN2", huge))
        ]
    )
    async with pool.acquire() as conn:
        stored = {
            r["vin"]: r
            for r in await conn.fetch(
                "SELECT vin, pg_column_size(state) AS size, pg_column_compression(state) AS method,"
                " state::text AS text FROM vehicle_state"
            )
        }
    assert stored["VIN1"]["size"] > 2_032  # past the default threshold of toasting and compression
    assert stored["VIN1"]["method"] is None
    assert stored["VIN2"]["method"] == "pglz"
    assert json.loads(stored["VIN2"]["text"]) == huge


async def test_a_moved_state_stays_in_its_page(pool: asyncpg.Pool, sink: Sink) -> None:
    """Migration 0017: a page keeps room for a state's next version, so a flush that moves every
    car's state writes each beside the old one (a HOT update, no new index entry). Packed, two
    3 KB states filled a page and most new versions went to another one."""
    typical: dict[str, TelemetryValue] = {f"extra/key{n:02d}": 1000.0 + n for n in range(80)}  # ~3 KB as jsonb
    vins = [f"VIN{n:02d}" for n in range(12)]
    blocks = "SELECT vin, (ctid::text::point)[0] AS block FROM vehicle_state"
    async with pool.acquire() as conn:
        await sink.write([VehicleSnapshot(vin, "acct", T0, T0, False, typical, frozenset(typical)) for vin in vins])
        before = {r["vin"]: r["block"] for r in await conn.fetch(blocks)}
        moved = typical | {"extra/key00": 0.0}
        later = T0 + timedelta(seconds=5)
        await sink.write(
            [VehicleSnapshot(vin, "acct", later, later, False, moved, frozenset({"extra/key00"})) for vin in vins]
        )
        after = {r["vin"]: r["block"] for r in await conn.fetch(blocks)}
        assert await conn.fetchval("SELECT count(*) FROM vehicle_state WHERE state->>'extra/key00' = '0.0'") == len(
            vins
        )
    assert after == before


async def test_only_a_newer_reading_moves_the_state(pool: asyncpg.Pool, sink: Sink) -> None:
    async with pool.acquire() as conn:
        await sink.write([snapshot(T0 + timedelta(seconds=10), drivetrain__soc=70.0)])
        result = await sink.write([snapshot(T0, drivetrain__soc=90.0)])
        soc = await conn.fetchval("SELECT soc FROM vehicle_state")
    assert result.state_rows == 0
    assert soc == 70.0


async def test_state_merges_values_from_separate_readings(pool: asyncpg.Pool, sink: Sink) -> None:
    async with pool.acquire() as conn:
        await sink.write([snapshot(T0, drivetrain__soc=70.0)])
        await sink.write([snapshot(T0 + timedelta(seconds=5), doors__locked=False)])
        row = await conn.fetchrow("SELECT soc, locked, state FROM vehicle_state")
    assert row is not None
    assert (row["soc"], row["locked"]) == (70.0, False)
    assert set(json.loads(row["state"])) == {"drivetrain/soc", "doors/locked"}


async def test_history_needs_soc_or_location(pool: asyncpg.Pool, sink: Sink) -> None:
    async with pool.acquire() as conn:
        await sink.write([snapshot(T0, {topics.DOORS_LOCKED}, drivetrain__soc=70.0, doors__locked=True)])
        await sink.write([snapshot(T0 + timedelta(seconds=5), {topics.LOCATION_LATITUDE}, location__latitude=52.0)])
        rows = await conn.fetch("SELECT ts, latitude FROM vehicle_telemetry ORDER BY ts")
    assert [(r["ts"], r["latitude"]) for r in rows] == [(T0 + timedelta(seconds=5), 52.0)]


async def test_replayed_readings_add_no_rows(pool: asyncpg.Pool, sink: Sink) -> None:
    batch = [snapshot(T0 + timedelta(seconds=i), vin=f"V{i % 3}", drivetrain__soc=float(i)) for i in range(30)]
    async with pool.acquire() as conn:
        first = await sink.write(batch)
        again = await sink.write(batch)
        count = await conn.fetchval("SELECT count(*) FROM vehicle_telemetry")
    assert first.telemetry_rows == 30
    assert again.telemetry_rows == 0
    assert count == 30


async def test_a_batch_may_repeat_a_vehicle(pool: asyncpg.Pool, sink: Sink) -> None:
    """A held (failed) batch flushed together with newer changes: newest state wins, both in history."""
    async with pool.acquire() as conn:
        result = await sink.write(
            [snapshot(T0 + timedelta(seconds=5), drivetrain__soc=60.0), snapshot(T0, drivetrain__soc=61.0)]
        )
        soc = await conn.fetchval("SELECT soc FROM vehicle_state")
    assert (result.state_rows, result.telemetry_rows, soc) == (1, 2, 60.0)


async def test_a_car_dated_reading_replaces_an_arrival_dated_state(pool: asyncpg.Pool, sink: Sink) -> None:
    # Telemetry without refresh/lastVehicleState was dated by its arrival; the car's own reading,
    # a little older than that arrival, must still move the state.
    async with pool.acquire() as conn:
        await sink.write([snapshot(T0 + timedelta(seconds=2), arrival=True, drivetrain__soc=50.0)])
        await sink.write([snapshot(T0, drivetrain__soc=51.0, location__latitude=52.0)])
        await sink.write([snapshot(T0 - timedelta(seconds=5), drivetrain__soc=49.0)])
        row = await conn.fetchrow("SELECT ts, soc, latitude, ts_from_arrival FROM vehicle_state WHERE vin = 'VIN1'")
    assert row is not None
    assert (row["ts"], row["soc"], row["latitude"], row["ts_from_arrival"]) == (T0, 51.0, 52.0, False)


@pytest.fixture
async def deriving_sink(db_settings: DatabaseSettings) -> AsyncIterator[PostgresSink]:
    """A PostgreSQL sink that derives drives, charges and parks in its flushes (`sink`'s do not)."""
    sink = PostgresSink(await create_pool(db_settings), PeriodSettings.from_env({}))
    await sink.ready()
    yield sink
    await sink.close()


async def test_a_batch_whose_history_failed_is_written_whole_the_next_time(deriving_sink: PostgresSink) -> None:
    """The latest states and the history go in two transactions at once: when the history's fails
    (the states' committed), writing the batch again stores each reading once and derives from it."""
    sink = deriving_sink
    batch = [snapshot(T0 + timedelta(minutes=i), vin=f"V{i % 2}", drivetrain__soc=50.0 + i) for i in range(6)]
    async with sink.pool.acquire() as conn:
        await conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'history refused by the test'; END $$;"
            " CREATE TRIGGER refuse BEFORE INSERT ON vehicle_telemetry FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
        with pytest.raises(SinkError, match="history refused by the test"):
            await sink.write(batch)
        assert await conn.fetchval("SELECT count(*) FROM vehicle_state") == 2  # the other transaction
        assert await conn.fetchval("SELECT count(*) FROM vehicle_derivation") == 0
        await conn.execute("DROP TRIGGER refuse ON vehicle_telemetry")

        result = await sink.write(batch)
        history = await conn.fetch("SELECT vin, soc FROM vehicle_telemetry ORDER BY ts")
        derived = await conn.fetchval("SELECT count(DISTINCT vin) FROM vehicle_derivation")
        socs = {r["vin"]: r["soc"] for r in await conn.fetch("SELECT vin, soc FROM vehicle_state")}
    assert result.telemetry_rows == 6
    assert [(r["vin"], r["soc"]) for r in history] == [(f"V{i % 2}", 50.0 + i) for i in range(6)]
    assert derived == 2
    assert socs == {"V0": 54.0, "V1": 55.0}


def test_documents_for_the_database_take_any_integer() -> None:
    """orjson writes them, but refuses integers past 64 bits, which json writes."""
    assert dumps({"a": [1.5, True, None, "é"]}) == '{"a":[1.5,true,null,"é"]}'
    assert dumps({"a": 2**70}) == '{"a":1180591620717411303424}'


async def test_a_derivation_state_is_kept_as_the_ingest_wrote_it(deriving_sink: PostgresSink) -> None:
    """Migration 0019: the text is stored as given, not built into jsonb and printed back each flush."""
    await deriving_sink.write([snapshot(T0, drivetrain__soc=80.0, location__latitude=52.0, location__longitude=4.5)])
    async with deriving_sink.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT state::text FROM vehicle_derivation WHERE vin = 'VIN1'")
    assert json.loads(stored)["last"][:4] == ["2026-01-01T12:00:00+00:00", 80.0, 52.0, 4.5]
    assert stored == json.dumps(json.loads(stored), separators=(",", ":"))  # as the ingest sends it: compact
