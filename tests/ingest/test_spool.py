"""The disk spool on its own, the ingest riding out a PostgreSQL outage under load, and replicas on a
shared subscription."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from broker.mosquitto import find_mosquitto
from common import topics
from common.settings import DatabaseSettings, MqttSettings
from common.values import TelemetryValue
from ingest.cache import VehicleSnapshot
from ingest.spool import Spool
from local_stack.postgres import LocalPostgres
from tests.conftest import start_broker, stop_process, throwaway_postgres
from tests.gateway.test_gateway import root, vin
from tests.helpers import client, wait_until
from tests.ingest.test_ingest import running_ingest

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
OUTAGE = 20.0
"""How long PostgreSQL stays down under load: the acceptance run's outage was 60 s; at the 1 s flush
interval used here, 20 s is twenty failed flushes into the spool, the same path at a third of the time."""


def snapshot(n: int) -> VehicleSnapshot:
    values: dict[str, TelemetryValue] = {
        topics.DRIVETRAIN_SOC: 50.5 + n,
        topics.LOCATION_POSITION: {"latitude": 52.1, "longitude": 4.3, "altitude": 2},
        topics.DOORS_LOCKED: True,
        topics.REFRESH_LAST_VEHICLE_STATE: T0 + timedelta(seconds=n),
    }
    return VehicleSnapshot("VIN1", "acct", T0 + timedelta(seconds=n), T0, False, values, frozenset(values))


def test_batches_come_back_whole_and_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000)
    assert spool.append([snapshot(1), snapshot(2)])
    assert spool.append([snapshot(3)])
    (tmp_path / ".half-written.batch.json.tmp").write_text("[{")  # a crash mid-write leaves only this
    batches = [batch for _path, batch in spool.batches()]
    assert batches == [[snapshot(1), snapshot(2)], [snapshot(3)]]
    for path, _batch in list(spool.batches()):
        spool.remove(path)
    assert spool.files() == []


def test_a_restarted_ingest_finds_the_batches_left_behind(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=1_000_000)
    assert first.append([snapshot(1)])
    again = Spool(tmp_path, max_bytes=1_000_000)
    assert [batch for _path, batch in again.batches()] == [[snapshot(1)]]
    assert again.bytes == first.bytes > 0


def test_the_bound_is_kept_and_said_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1500)
    accepted = [spool.append([snapshot(n)]) for n in range(10)]
    assert accepted[0] is True
    assert accepted[-1] is False
    assert spool.bytes <= 1500
    assert spool.full_events == 1  # one episode, one loud line


@pytest.fixture
def outage_postgres() -> Iterator[LocalPostgres]:
    with throwaway_postgres("outage") as server:
        yield server


@pytest.fixture
def one_broker(tmp_path: Path) -> Iterator[MqttSettings]:
    """A broker of its own: a minute-long test runs once, on Mosquitto where it is installed."""
    running = start_broker("mosquitto" if find_mosquitto() else "amqtt", tmp_path)
    yield running.mqtt_settings()
    stop_process(running.process)


async def test_postgres_down_under_load_loses_nothing_and_duplicates_nothing(
    one_broker: MqttSettings, outage_postgres: LocalPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    mqtt_settings = one_broker
    db = DatabaseSettings.from_env({"DATABASE_URL": outage_postgres.url()})
    published: list[tuple[str, datetime]] = []
    async with (
        running_ingest(mqtt_settings, db, flush_interval=1.0) as ingest,
        client(mqtt_settings, "gateway") as gateway,
    ):

        async def publish_for(seconds: float) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            while loop.time() < deadline:
                for n in (11, 12, 13):
                    ts = datetime.now(UTC).replace(microsecond=len(published) % 1_000_000)
                    await gateway.publish(f"{root(n)}/{topics.REFRESH_LAST_VEHICLE_STATE}", ts.isoformat(), qos=1)
                    await gateway.publish(f"{root(n)}/drivetrain/soc", str(40 + len(published) % 50), qos=1)
                    published.append((vin(n), ts))
                await asyncio.sleep(0.25)

        await publish_for(3)
        await asyncio.to_thread(outage_postgres.stop)
        await publish_for(OUTAGE)
        assert ingest.spool.files(), "the outage should have sent batches to the spool"
        await asyncio.to_thread(outage_postgres.start, outage_postgres.data_dir.parent / "postgres-after.log")
        await publish_for(3)

        async def spool_drained() -> bool:
            return not ingest.spool.files() and ingest.flusher.held == 0

        await wait_until(spool_drained, timeout=30, what="the spool written back")
    conn = await asyncpg.connect(outage_postgres.url())
    try:
        rows = await conn.fetch(
            "SELECT vin, ts FROM vehicle_telemetry WHERE vin = ANY($1::text[])", [vin(n) for n in (11, 12, 13)]
        )
    finally:
        await conn.close()
    stored = [(r["vin"], r["ts"]) for r in rows]
    assert len(stored) == len(set(stored))  # none twice
    assert set(stored) == set(published)  # none lost
    # The acceptance run's ingest logged a full asyncpg traceback 14 times in one outage.
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in loud if r.exc_info], "no traceback for a database that is simply down"
    assert [r.levelname for r in loud if r.name == "ingest.flusher"] == ["ERROR", "WARNING"]  # gone, back


async def test_two_replicas_on_a_shared_subscription_split_the_stream(
    one_broker: MqttSettings, db_settings: DatabaseSettings
) -> None:
    shared = {"INGEST_SHARED_SUBSCRIPTION": "ingest"}
    published: set[tuple[str, datetime]] = set()
    async with (
        running_ingest(one_broker, db_settings, env=shared) as first,
        running_ingest(one_broker, db_settings, env=shared) as second,
        client(one_broker, "gateway") as gateway,
    ):
        for i in range(200):
            n = 21 + i % 4
            ts = datetime(2026, 2, 1, 12, 0, tzinfo=UTC) + timedelta(seconds=i)
            await gateway.publish(f"{root(n)}/{topics.REFRESH_LAST_VEHICLE_STATE}", ts.isoformat(), qos=1)
            await gateway.publish(f"{root(n)}/drivetrain/soc", str(30 + i % 60), qos=1)
            published.add((vin(n), ts))
        await wait_until(lambda: first.cache.accepted + second.cache.accepted >= 400, what="every message taken")
        await asyncio.sleep(0.5)  # anything delivered twice would arrive by now
        taken = (first.cache.accepted, second.cache.accepted)
    assert sum(taken) == 400  # each message went to exactly one replica
    assert min(taken) > 0  # and both did work
    conn = await asyncpg.connect(db_settings.url.get_secret_value())
    try:
        rows = await conn.fetch("SELECT vin, ts FROM vehicle_telemetry WHERE ts >= '2026-02-01'")
    finally:
        await conn.close()
    assert {(r["vin"], r["ts"]) for r in rows} == published
