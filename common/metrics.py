"""Each program publishes its Prometheus metrics over MQTT (retained text), and the API serves them
all at /metrics: one scrape target in a container where only the API's port is reachable."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CollectorRegistry, generate_latest

from common.mqtt import MessageTooLarge, MqttConnection, MqttNotConnected

log = logging.getLogger(__name__)

PUBLISH_INTERVAL = 15.0


class MetricsPublisher:
    def __init__(
        self, mqtt: MqttConnection, registry: CollectorRegistry, topic: str, interval: float = PUBLISH_INTERVAL
    ) -> None:
        self.mqtt = mqtt
        self.registry = registry
        self.topic = topic
        self.interval = interval

    async def publish(self) -> None:
        with contextlib.suppress(MqttNotConnected):  # the next round after the reconnect sends it
            try:
                await self.mqtt.publish(self.topic, generate_latest(self.registry), qos=0, retain=True)
            except MessageTooLarge as exc:
                log.warning("metrics not published (/metrics keeps the last ones): %s", exc)

    async def run(self) -> None:
        while True:
            await self.mqtt.connected.wait()
            await self.publish()
            await asyncio.sleep(self.interval)
