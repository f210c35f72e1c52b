"""Publishes command requests and matches their results by id (zigbee2mqtt's transaction pattern)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import aiomqtt
from pydantic import ValidationError

from common import topics
from common.commands import CommandRequest, CommandResult
from common.mqtt import MqttConnection

log = logging.getLogger(__name__)


class CommandTimeout(Exception):
    def __init__(self, command_id: UUID) -> None:
        super().__init__(f"no result for command {command_id}")
        self.command_id = command_id


class CommandRelay:
    def __init__(self, mqtt: MqttConnection, prefix: str) -> None:
        self.mqtt = mqtt
        self.prefix = prefix
        self._pending: dict[UUID, asyncio.Future[CommandResult]] = {}

    def result_subscription(self) -> tuple[str, int]:
        return topics.command_result_filter(self.prefix), 1

    async def on_result(self, message: aiomqtt.Message) -> None:
        try:
            result = CommandResult.model_validate_json(message.payload if isinstance(message.payload, bytes) else b"")
        except ValidationError as exc:
            log.warning("ignoring a malformed command result on %s: %s", message.topic.value, exc.errors()[0]["msg"])
            return
        if result.id is None:
            return
        future = self._pending.get(result.id)
        if future is not None and not future.done():
            future.set_result(result)

    async def send(
        self,
        account: str,
        vin: str,
        command: str,
        args: dict[str, Any],
        *,
        command_id: UUID,
        requested_by: str,
        timeout: float,
    ) -> asyncio.Future[CommandResult]:
        """Publish a request; the future resolves with its result. Expires when the caller stops waiting."""
        request = CommandRequest(
            id=command_id,
            args=args,
            requested_by=requested_by,
            expires_at=datetime.now(UTC) + timedelta(seconds=timeout),
        )
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = future
        future.add_done_callback(lambda _f: self._pending.pop(request.id, None))
        topic = topics.VehicleTopics(self.prefix, account, vin).command(command)
        try:
            await self.mqtt.publish(topic, request.model_dump_json(), qos=1)
        except BaseException:
            future.cancel()
            raise
        return future

    async def wait(self, command_id: UUID, future: asyncio.Future[CommandResult], timeout: float) -> CommandResult:
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            future.cancel()
            raise CommandTimeout(command_id) from None
