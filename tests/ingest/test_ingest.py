"""The ingest in-process against a real broker and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator

import asyncpg
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from common import topics
from common.alerts import AlertSettings
from common.database import create_pool
from common.settings import DatabaseSettings, MqttSettings
from common.values import CONTRACT
from ingest.app import Ingest, open_sink, subscriptions
from ingest.postgres_sink import PostgresSink
from ingest.settings import IngestSettings
from tests.conftest import ROOT
from tests.gateway.test_gateway import root, running_gateway, vin
from tests.helpers import client, wait_until
from tests.ingest.test_cache_properties import PAYLOADS


@contextlib.asynccontextmanager
async def running_ingest(
    mqtt_settings: MqttSettings,
    db_settings: DatabaseSettings,
    flush_interval: float = 0.3,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Ingest]:
    env = env or {}
    stop = asyncio.Event()
    sink = await open_sink("postgres", {"DATABASE_URL": db_settings.url.get_secret_value()}, stop)
    assert sink is not None
    settings = IngestSettings.from_env(
        {
            "INGEST_FLUSH_INTERVAL": str(flush_interval),
            "INGEST_CLIENT_ID": f"ingest-{uuid.uuid4().hex[:8]}",
            "INGEST_SPOOL_DIR": tempfile.mkdtemp(prefix="ingest-spool-"),
            **env,
        }
    )
    ingest = Ingest(settings, mqtt_settings, sink, AlertSettings.from_env(env))
    task = asyncio.create_task(ingest.run(stop))
    await ingest.mqtt.wait_connected(10)
    try:
        yield ingest
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await sink.close()


def reaches_the_ingest(mqtt_settings: MqttSettings, topic: str) -> bool:
    """Whether the ingest's subscriptions deliver a message on `topic` to it."""
    return any(topic_matches_sub(f, topic) for f, _qos in subscriptions(mqtt_settings.topic_prefix))


async def count(db: DatabaseSettings, sql: str) -> int:
    conn = await asyncpg.connect(db.url.get_secret_value())
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def test_fleet_telemetry_reaches_the_database(mqtt_settings: MqttSettings, db_settings: DatabaseSettings) -> None:
    async with running_ingest(mqtt_settings, db_settings), running_gateway(mqtt_settings, vehicles=3):

        async def every_vehicle_has_history() -> bool:
            return await count(db_settings, "SELECT count(DISTINCT vin) FROM vehicle_telemetry") == 3

        await wait_until(every_vehicle_has_history, timeout=10, what="history for 3 vehicles")
    conn = await asyncpg.connect(db_settings.url.get_secret_value())
    try:
        states = [tuple(r) for r in await conn.fetch("SELECT vin, ts, soc, latitude FROM vehicle_state ORDER BY vin")]
    finally:
        await conn.close()
    assert [s for s in states if s[2] is not None and s[3] is not None] == states
    assert len(states) == 3
    assert await count(db_settings, "SELECT count(*) FROM vehicles WHERE model IS NOT NULL") == 3


async def test_malformed_messages_are_counted_and_ingest_keeps_going(
    mqtt_settings: MqttSettings, db_settings: DatabaseSettings
) -> None:
    async with running_ingest(mqtt_settings, db_settings) as ingest:
        async with client(mqtt_settings, "gateway") as gw:
            for payload in (b"eighty", b"\xff", b"nan", b"{}"):
                await gw.publish(f"{root(7)}/drivetrain/soc", payload, qos=1)
            await gw.publish(f"{root(7)}/drivetrain/soc", b"42.5", qos=1)
            await wait_until(lambda: vin(7) in ingest.cache, what="the good reading delivered")
        await wait_until(lambda: ingest.cache.malformed == 4, what="4 malformed counted")

        async def stored() -> bool:
            return await count(db_settings, "SELECT count(*) FROM vehicle_telemetry WHERE soc = 42.5") == 1

        await wait_until(stored, what="the good reading stored")

        async def set_aside() -> bool:
            return await count(db_settings, f"SELECT count(*) FROM dead_letters WHERE topic LIKE '%{vin(7)}%'") == 4

        await wait_until(set_aside, what="the 4 malformed messages in dead_letters")
    conn = await asyncpg.connect(db_settings.url.get_secret_value())
    try:
        reasons = await conn.fetch("SELECT payload, reason FROM dead_letters ORDER BY id")
    finally:
        await conn.close()
    assert (b"eighty", "drivetrain/soc: expected a number, got 'eighty'") in [(bytes(r[0]), r[1]) for r in reasons]


async def test_a_new_vehicle_is_registered_at_once_not_at_the_next_flush(
    mqtt_settings: MqttSettings, db_settings: DatabaseSettings
) -> None:
    """The API routes a command by the vehicle's row: a car first seen must not wait out the flush
    interval (5 s by default) before it can be locked. Its reading still waits for the flush."""
    car = vin(31)
    async with (
        running_ingest(mqtt_settings, db_settings, flush_interval=3600) as ingest,
        client(mqtt_settings, "gateway") as gw,
    ):
        await gw.publish(f"{root(31)}/drivetrain/soc", b"61.5", qos=1)

        async def registered() -> bool:
            return await count(db_settings, f"SELECT count(*) FROM vehicles WHERE vin = '{car}'") == 1

        await wait_until(registered, timeout=5, what="the new vehicle's row")
        assert ingest.flusher.flushes == 0
    assert await count(db_settings, f"SELECT count(*) FROM vehicle_telemetry WHERE vin = '{car}'") == 1


async def test_stopping_writes_the_cache_first(mqtt_settings: MqttSettings, db_settings: DatabaseSettings) -> None:
    async with running_ingest(mqtt_settings, db_settings, flush_interval=3600) as ingest:
        async with client(mqtt_settings, "gateway") as gw:
            await gw.publish(f"{root(8)}/location/latitude", b"52.5", qos=1)
        await wait_until(lambda: vin(8) in ingest.cache, what="message cached")
        assert await count(db_settings, "SELECT count(*) FROM vehicle_telemetry") == 0
    assert await count(db_settings, "SELECT count(*) FROM vehicle_telemetry WHERE latitude = 52.5") == 1


async def test_a_failed_flush_is_kept_and_written_later(
    mqtt_settings: MqttSettings, db_settings: DatabaseSettings
) -> None:
    async with running_ingest(mqtt_settings, db_settings, flush_interval=3600) as ingest:
        async with client(mqtt_settings, "gateway") as gw:
            await gw.publish(f"{root(9)}/drivetrain/soc", b"33", qos=1)
        await wait_until(lambda: vin(9) in ingest.cache, what="message cached")
        healthy_sink = ingest.flusher.sink
        ingest.flusher.sink = PostgresSink(
            await create_pool(
                DatabaseSettings.from_env({"DATABASE_URL": "postgresql://nobody:x@127.0.0.1:1/none"}), min_size=0
            )
        )
        assert await ingest.flusher.flush() is None
        assert len(ingest.spool.files()) == 1  # on disk, so its messages could be acknowledged
        await ingest.flusher.sink.close()
        ingest.flusher.sink = healthy_sink
        assert await ingest.flusher.flush() is not None
        assert ingest.spool.files() == []
        assert ingest.flusher.replayed_batches == 1
    assert await count(db_settings, "SELECT count(*) FROM vehicle_telemetry WHERE soc = 33") == 1


# Topic levels a broker accepts (Mosquitto disconnects a client for control characters and
# non-characters in a topic): the payloads, not the topics, are what this test throws at the ingest.
SEGMENT = st.text(st.characters(categories=["L", "N", "P", "S"], exclude_characters="+#/"), min_size=1, max_size=30)
TOPIC_KEYS = st.sampled_from(sorted(CONTRACT)) | st.builds(
    "/".join, st.lists(st.sampled_from(topics.INGESTED_CATEGORIES) | SEGMENT, min_size=1, max_size=3)
)


@settings(
    max_examples=3,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # a failing run is slow enough without shrinking
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.data_too_large, HealthCheck.too_slow],
)
@given(messages=st.lists(st.tuples(TOPIC_KEYS, PAYLOADS), min_size=1000, max_size=1000))
async def test_thousands_of_generated_messages_leave_the_ingest_alive_and_counting(
    mqtt_settings: MqttSettings, db_settings: DatabaseSettings, messages: list[tuple[str, bytes]]
) -> None:
    async with running_ingest(mqtt_settings, db_settings) as ingest:

        def counted() -> int:
            return ingest.cache.accepted + ingest.cache.malformed

        # Retained messages of earlier tests on this broker arrive first: count from after them.
        settled = -1
        while settled != counted():
            settled = counted()
            await asyncio.sleep(0.3)
        delivered = [p for k, p in messages if reaches_the_ingest(mqtt_settings, f"{root(6)}/{k}")]
        expected = settled + sum(1 for payload in delivered if payload) + 1  # an empty payload only clears
        async with client(mqtt_settings, "gateway") as gw:
            for key, payload in messages:
                await gw.publish(f"{root(6)}/{key}", payload, qos=1)
            await gw.publish(f"{root(6)}/drivetrain/soc", b"61.5", qos=1)
            await wait_until(lambda: counted() >= expected, timeout=30, what="every message counted")
            await asyncio.sleep(0.3)
            assert counted() == expected, f"settled at {settled}; retained messages may have come after"

        async def good_reading_stored() -> bool:
            return await count(db_settings, "SELECT count(*) FROM vehicle_state WHERE soc = 61.5") == 1

        await wait_until(good_reading_stored, timeout=15, what="the good reading after the garbage stored")
        assert ingest.flusher.failures == 0


async def test_migrate_applies_the_migrations_and_exits(db_settings: DatabaseSettings) -> None:
    """The documented way to prepare a database by hand (docs/operations.md)."""
    env = {**os.environ, "DATABASE_URL": db_settings.url.get_secret_value(), "LOG_LEVEL": "INFO"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ingest",
        "migrate",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    assert b"applied" in output
    versions = await count(db_settings, "SELECT count(*) FROM schema_migrations")
    assert versions == len(list((ROOT / "migrations").glob("*.sql")))
