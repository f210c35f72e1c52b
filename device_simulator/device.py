"""One simulated device, as a real one behaves: it connects over MQTT-over-WebSocket to the API's
`/mqtt` with a fresh HMAC password each time (and reconnects before its password's window ends),
says `online` (its will says `offline`), reports telemetry (live radar targets), applies the
configurations it is sent, carries out OTA updates and answers diagnostic requests.

Failures are part of the simulation: a configuration with `"fail": true` is refused, and an OTA
update fails for a device made with `ota_fails` (or with the chance `ota_failure_rate`)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiomqtt

from common import device_credentials, topics
from common.backoff import Backoff
from common.mqtt import observe_drop

log = logging.getLogger(__name__)

RECONNECT_BEFORE = 300
"""Seconds before its password leaves the accepted windows that a device signs a new one and reconnects."""
OTA_STEP = 0.05


@dataclass
class DeviceIdentity:
    device_id: str
    secret: str


@dataclass
class SimulatedDevice:
    identity: DeviceIdentity
    host: str
    port: int
    telemetry_interval: float = 60.0
    ota_fails: bool = False
    ota_failure_rate: float = 0.0
    firmware_version: str = "1.0.0"
    config: dict[str, Any] = field(default_factory=dict)
    config_version: int = 0
    rng: random.Random = field(default_factory=random.Random)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _last_signed: int = 0
    _attempted: set[int] = field(default_factory=set)

    @property
    def device_id(self) -> str:
        return self.identity.device_id

    def topic(self, key: str) -> str:
        return topics.device_topic(self.device_id, key)

    def _password(self) -> tuple[str, int]:
        signed = max(int(time.time()), self._last_signed + 1)
        self._last_signed = signed
        return device_credentials.password(self.identity.secret, self.device_id, signed), signed

    async def run(self) -> None:
        """Until cancelled: connect, serve, reconnect (with backoff when refused or cut off)."""
        backoff = Backoff(initial=1, maximum=60)
        while True:
            password, signed = self._password()
            # Good for the rest of its hour window and the next: renew a little before that ends.
            renew_in = (signed // device_credentials.WINDOW + 2) * device_credentials.WINDOW - time.time()
            try:
                await asyncio.wait_for(self._session(password), max(1.0, renew_in - RECONNECT_BEFORE))
                backoff.reset()
            except TimeoutError:
                backoff.reset()  # time for a fresh password
            except aiomqtt.MqttError as exc:
                delay = backoff.next_delay()
                log.warning("device %s: %s; reconnecting in %.0f s", self.device_id, exc, delay)
                await asyncio.sleep(delay)
            finally:
                self.connected.clear()

    async def _session(self, password: str) -> None:
        will = aiomqtt.Will(self.topic(topics.DEVICE_STATUS), b"offline", qos=1, retain=True)
        client = aiomqtt.Client(
            self.host,
            self.port,
            transport="websockets",
            websocket_path="/mqtt",
            username=self.device_id,
            password=password,
            identifier=self.device_id,
            will=will,
            keepalive=30,
            timeout=10,
        )
        try:
            async with client:
                for key in (topics.DEVICE_CONFIG_UPDATE, topics.DEVICE_OTA_TRIGGER, topics.DEVICE_DIAG_REQUEST):
                    await client.subscribe(self.topic(key), qos=1)
                await client.publish(self.topic(topics.DEVICE_STATUS), b"online", qos=1, retain=True)
                self.connected.set()
                reporter = asyncio.create_task(self._report(client))
                try:
                    async for message in client.messages:
                        await self._handle(client, str(message.topic), message.payload)
                finally:
                    reporter.cancel()
        finally:
            observe_drop(client)  # a drop while cancelled is not an error of its own

    async def _report(self, client: aiomqtt.Client) -> None:
        while True:
            targets = [
                {"x": round(self.rng.uniform(-5, 5), 2), "y": round(self.rng.uniform(0, 8), 2)}
                for _ in range(self.rng.randint(0, 3))
            ]
            reading = {"ts": datetime.now(UTC).isoformat(), "targets": targets, "firmware": self.firmware_version}
            await client.publish(self.topic(topics.DEVICE_TELEMETRY), json.dumps(reading), qos=1)
            await asyncio.sleep(self.telemetry_interval)

    async def _handle(self, client: aiomqtt.Client, topic: str, payload: Any) -> None:
        if not isinstance(payload, bytes) or not payload:
            return  # a cleared retained message
        try:
            body = json.loads(payload)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        if topic == self.topic(topics.DEVICE_CONFIG_UPDATE):
            await self._apply_config(client, body)
        elif topic == self.topic(topics.DEVICE_OTA_TRIGGER):
            await self._update(client, body)
        elif topic == self.topic(topics.DEVICE_DIAG_REQUEST):
            answer = {
                "request_id": body.get("request_id"),
                "firmware": self.firmware_version,
                "config_version": self.config_version,
                "uptime_s": round(time.monotonic(), 1),
            }
            await client.publish(self.topic(topics.DEVICE_DIAG_RESPONSE), json.dumps(answer), qos=1)

    async def _apply_config(self, client: aiomqtt.Client, body: dict[str, Any]) -> None:
        version, config = body.get("version"), body.get("config")
        if not isinstance(version, int) or not isinstance(config, dict) or version <= self.config_version:
            return  # an old one, seen again as the retained copy after a reconnect
        if config.get("fail"):
            answer = {"version": version, "status": "failed", "reason": "the device refused this configuration"}
        else:
            self.config, self.config_version = config, version
            answer = {"version": version, "status": "applied"}
        await client.publish(self.topic(topics.DEVICE_CONFIG_STATUS), json.dumps(answer), qos=1)

    async def _update(self, client: aiomqtt.Client, body: dict[str, Any]) -> None:
        rollout, version = body.get("rollout_id"), body.get("version")
        if not isinstance(rollout, int) or not isinstance(version, str) or rollout in self._attempted:
            return  # the retained trigger, seen again after a reconnect
        self._attempted.add(rollout)
        for step in ("downloading", "installing"):
            await client.publish(
                self.topic(topics.DEVICE_OTA_STATUS), json.dumps({"rollout_id": rollout, "status": step})
            )
            await asyncio.sleep(OTA_STEP)
        if self.ota_fails or self.rng.random() < self.ota_failure_rate:
            answer = {"rollout_id": rollout, "status": "failed", "reason": "image checksum mismatch"}
        else:
            self.firmware_version = version
            answer = {"rollout_id": rollout, "status": "succeeded"}
        await client.publish(self.topic(topics.DEVICE_OTA_STATUS), json.dumps(answer), qos=1)
