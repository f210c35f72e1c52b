"""Publish-on-change through a real broker: what changed goes out (the reading's time first), what
did not stays quiet, and a reconnect's republish sends every last value again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from common import topics
from common.mqtt import MqttConnection, MqttOptions
from common.settings import MqttSettings
from common.values import TelemetryValue
from gateway.publisher import TelemetryPublisher
from tests.helpers import client, collect, running

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


@asynccontextmanager
async def publisher(mqtt_settings: MqttSettings) -> AsyncIterator[TelemetryPublisher]:
    connection = MqttConnection(mqtt_settings, MqttOptions(component="gateway", client_id=f"pub-{uuid.uuid4().hex}"))
    async with running(connection):
        await connection.wait_connected(10)
        telemetry = TelemetryPublisher(connection)
        try:
            yield telemetry
        finally:  # the session's broker is shared: the ingest's tests would read what is left retained
            published = [f"{root}/{key}" for root, last in telemetry._last.items() for key in last]
            await connection.publish_many([(topic, b"") for topic in published], retain=True)


async def test_only_what_changed_is_published_and_the_reading_time_goes_first(mqtt_settings: MqttSettings) -> None:
    root = f"saic/publisher/vehicles/V{uuid.uuid4().hex[:8]}"
    position: dict[str, TelemetryValue] = {"latitude": 52.1, "longitude": 4.3}
    values: dict[str, TelemetryValue] = {
        topics.DRIVETRAIN_SOC: 80.5,
        topics.DOORS_LOCKED: True,
        topics.DRIVETRAIN_RANGE: 1,
        topics.LOCATION_POSITION: position,
        topics.REFRESH_LAST_VEHICLE_STATE: T0,
    }
    async with client(mqtt_settings, "api") as reader, publisher(mqtt_settings) as telemetry:
        await reader.subscribe(f"{root}/#", qos=1)
        assert await telemetry.publish_changes(root, values) == len(values)
        first = await collect(reader, len(values), timeout=5)
        assert first[0].topic.value == f"{root}/{topics.REFRESH_LAST_VEHICLE_STATE}"

        assert await telemetry.publish_changes(root, values) == 0  # nothing changed
        position["latitude"] = 52.2  # the source changed its dict in place
        values[topics.DRIVETRAIN_RANGE] = True  # equal to 1 in Python, but not the same payload
        values[topics.REFRESH_LAST_VEHICLE_STATE] = T0.replace(minute=1)
        assert await telemetry.publish_changes(root, values) == 3
        second = await collect(reader, 10, timeout=1)
        assert [m.topic.value.removeprefix(f"{root}/") for m in second] == [
            topics.REFRESH_LAST_VEHICLE_STATE,
            topics.DRIVETRAIN_RANGE,
            topics.LOCATION_POSITION,
        ]
        assert second[1].payload == b"True"
        assert b"52.2" in bytes(second[2].payload)

        await telemetry.republish_all()
        again = {m.topic.value: m.payload for m in await collect(reader, 10, timeout=1)}
        assert again.keys() == {f"{root}/{key}" for key in values}
