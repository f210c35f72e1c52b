"""Readings as the car made them: a late value completes its reading's row, and the broker's
retained re-sends add no reading (issue 13)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from common import topics
from common.settings import DatabaseSettings, MqttSettings
from common.values import TelemetryValue, encode
from tests.gateway.test_gateway import root, vin
from tests.helpers import client, wait_until
from tests.ingest.test_ingest import count, running_ingest

T1 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


async def rows_of(db: DatabaseSettings, n: int) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db.url.get_secret_value())
    try:
        return await conn.fetch("SELECT * FROM vehicle_telemetry WHERE vin = $1 ORDER BY ts", vin(n))
    finally:
        await conn.close()


async def test_a_value_that_arrives_after_its_row_was_written_completes_it(
    private_mqtt: MqttSettings, db_settings: DatabaseSettings
) -> None:
    """Upstream's order: the reading's time and location at once, the SoC ~3 s later (after the
    charging call's event-id exchange), with a flush in between."""
    async with running_ingest(private_mqtt, db_settings, flush_interval=3600) as ingest:
        async with client(private_mqtt, "gateway") as gw:
            await gw.publish(f"{root(21)}/{topics.REFRESH_LAST_VEHICLE_STATE}", encode(T1), qos=1)
            await gw.publish(f"{root(21)}/{topics.LOCATION_LATITUDE}", b"52.1", qos=1)
            await gw.publish(f"{root(21)}/{topics.LOCATION_LONGITUDE}", b"4.3", qos=1)
            await wait_until(lambda: ingest.cache.accepted >= 3, what="the reading's first values cached")
            await ingest.flusher.flush()
            [first] = await rows_of(db_settings, 21)
            assert first["soc"] is None

            await gw.publish(f"{root(21)}/{topics.DRIVETRAIN_SOC}", b"71.5", qos=1)
            await wait_until(lambda: ingest.cache.accepted >= 4, what="the late SoC cached")
        await ingest.flusher.flush()
        await ingest.flusher.flush()  # nothing new: the row stays as it is
    [row] = await rows_of(db_settings, 21)
    assert (row["ts"], row["soc"], row["latitude"], row["longitude"]) == (T1, 71.5, 52.1, 4.3)
    assert set(json.loads(row["payload"])) == {
        topics.REFRESH_LAST_VEHICLE_STATE,
        topics.LOCATION_LATITUDE,
        topics.LOCATION_LONGITUDE,
        topics.DRIVETRAIN_SOC,
    }


async def test_the_brokers_retained_resend_adds_no_reading(
    private_mqtt: MqttSettings, db_settings: DatabaseSettings
) -> None:
    """A parked car: one reading with SoC and location, then a newer status time with nothing
    changed. A restarted ingest gets every retained value again; the car made no new reading."""
    reading: dict[str, TelemetryValue] = {
        topics.REFRESH_LAST_VEHICLE_STATE: T1,
        topics.DRIVETRAIN_SOC: 64.5,
        topics.LOCATION_LATITUDE: 52.1,
        topics.LOCATION_LONGITUDE: 4.3,
    }
    async with client(private_mqtt, "gateway") as gw:
        for key, value in reading.items():
            await gw.publish(f"{root(22)}/{key}", encode(value), qos=1, retain=True)
        async with running_ingest(private_mqtt, db_settings) as ingest:

            async def first_reading_stored() -> bool:
                return len(await rows_of(db_settings, 22)) == 1

            await wait_until(lambda: ingest.cache.accepted == 4, what="the first reading cached")
            await wait_until(first_reading_stored, what="the first reading stored")
            newer = T1 + timedelta(minutes=5)
            await gw.publish(f"{root(22)}/{topics.REFRESH_LAST_VEHICLE_STATE}", encode(newer), qos=1, retain=True)
            await wait_until(lambda: ingest.cache.accepted == 5, what="the newer status time cached")

        async with running_ingest(private_mqtt, db_settings) as restarted:
            await wait_until(lambda: restarted.cache.accepted == 4, what="the retained values re-sent")
            await restarted.flusher.flush()
    rows = await rows_of(db_settings, 22)
    assert [r["ts"] for r in rows] == [T1]
    assert await count(db_settings, f"SELECT count(*) FROM vehicle_state WHERE vin = '{vin(22)}' AND soc = 64.5") == 1
