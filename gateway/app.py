"""Composition root of the gateway: source, MQTT connection, publisher, poller and command dispatcher."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from common import topics
from common.mqtt import MqttConnection, MqttOptions
from common.settings import MqttSettings
from gateway.dispatcher import CommandDispatcher
from gateway.publisher import TelemetryPublisher
from gateway.settings import GatewaySettings
from gateway.simulator import SimulatedFleet
from gateway.source import VehicleSource

log = logging.getLogger(__name__)

POLL_CHUNK = 50
"""Vehicles polled at once: bounds the publishes in flight for a large fleet."""


def build_source(settings: GatewaySettings) -> VehicleSource:
    return SimulatedFleet(settings.simulated_vehicles, settings.simulator_seed, settings.simulator_command_latency)


class Gateway:
    def __init__(self, settings: GatewaySettings, mqtt_settings: MqttSettings, source: VehicleSource) -> None:
        self.settings = settings
        self.prefix = mqtt_settings.topic_prefix
        self.source = source
        self.roots: dict[str, str] = {}
        self.mqtt = MqttConnection(
            mqtt_settings,
            MqttOptions(
                component="gateway",
                # Unique per run: amqtt mishandles a clean-session client id that reconnects (stale
                # session state gets replayed), and the gateway keeps no broker-side session anyway.
                client_id=f"gateway-{topics.account_segment(settings.account)[:40]}-{uuid.uuid4().hex[:8]}",
                subscriptions=[(topics.command_filter(self.prefix, settings.account), 1)],
                status_topic=topics.gateway_status_topic(self.prefix),
            ),
        )
        self.publisher = TelemetryPublisher(self.mqtt)
        self.dispatcher = CommandDispatcher(
            self.mqtt,
            source,
            set(),
            prefix=self.prefix,
            timeout=settings.command_timeout,
            after_success=self.poll_vehicle,
        )
        self.mqtt.on_message = self.dispatcher.on_message
        self.mqtt.options.on_connect.append(self.publisher.republish_all)
        self.polls = 0

    async def poll_vehicle(self, vin: str) -> None:
        try:
            values = await self.source.poll(vin)
        except Exception:
            log.exception("polling %s failed", vin)
            return
        await self.publisher.publish_changes(self.roots[vin], values)

    async def poll_all(self) -> None:
        vins = list(self.roots)
        for start in range(0, len(vins), POLL_CHUNK):
            await asyncio.gather(*(self.poll_vehicle(vin) for vin in vins[start : start + POLL_CHUNK]))
        self.polls += 1

    async def _poll_loop(self) -> None:
        interval = self.settings.poll_interval
        last_heartbeat = time.monotonic()
        next_run = time.monotonic()
        while True:
            await self.mqtt.connected.wait()
            started = time.monotonic()
            await self.poll_all()
            elapsed = time.monotonic() - started
            if elapsed > interval:
                log.warning("a polling cycle took %.2fs, longer than the %.2fs interval", elapsed, interval)
            if started - last_heartbeat >= self.settings.heartbeat_interval:
                last_heartbeat = started
                await self.publisher.republish_all()
            next_run = max(next_run + interval, time.monotonic())
            await asyncio.sleep(next_run - time.monotonic())

    async def run(self, stop: asyncio.Event) -> None:
        for info in await self.source.vehicles():
            self.roots[info.vin] = topics.VehicleTopics(self.prefix, self.settings.account, info.vin).root
        self.dispatcher.known_vins.update(self.roots)
        log.info("gateway serving %d vehicles of %s", len(self.roots), self.settings.account)
        async with asyncio.TaskGroup() as group:
            connection = group.create_task(self.mqtt.run())
            poller = group.create_task(self._poll_loop())
            await stop.wait()
            log.info("stopping: finishing running commands")
            poller.cancel()
            await self.dispatcher.drain()
            await self.mqtt.close()
            connection.cancel()
