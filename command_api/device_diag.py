"""Diagnostics on demand: `POST /admin/devices/{id}/diag` sends `diag/request` with a request id and
waits for the device's `diag/response` carrying the same id."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from command_api.errors import ApiError
from common import topics
from common.mqtt import MqttConnection, MqttNotConnected

MAX_WAIT = 30.0


class DiagRelay:
    def __init__(self, mqtt: MqttConnection) -> None:
        self.mqtt = mqtt
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def subscription(self) -> tuple[str, int]:
        return topics.device_filter(topics.DEVICE_DIAG_RESPONSE), 1

    def on_message(self, topic: str, payload: bytes) -> bool:
        """True when the message was a diagnostic answer (whether anyone still waits for it)."""
        parsed = topics.parse_device_topic(topic)
        if parsed is None or parsed.key != topics.DEVICE_DIAG_RESPONSE:
            return False
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return True
        if isinstance(body, dict):
            waiter = self._waiting.get(f"{parsed.device_id}:{body.get('request_id')}")
            if waiter is not None and not waiter.done():
                waiter.set_result(body)
        return True

    async def ask(self, device_id: str, request: dict[str, Any], wait: float) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        key = f"{device_id}:{request_id}"
        waiter = self._waiting[key] = asyncio.get_running_loop().create_future()
        try:
            try:
                message = json.dumps({**request, "request_id": request_id})
                await self.mqtt.publish(topics.device_topic(device_id, topics.DEVICE_DIAG_REQUEST), message, qos=1)
            except MqttNotConnected as exc:
                raise ApiError(503, "broker_unavailable", str(exc)) from None
            try:
                return await asyncio.wait_for(waiter, min(wait, MAX_WAIT))
            except TimeoutError:
                raise ApiError(
                    504, "device_silent", f"device {device_id} did not answer within {wait:g} s (is it online?)"
                ) from None
        finally:
            self._waiting.pop(key, None)
