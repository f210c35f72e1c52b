"""Turns `<root>/cmd/<command>` messages into handler calls and `<root>/cmd/<command>/result` answers."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import aiomqtt
from pydantic import ValidationError

from common import topics
from common.commands import (
    CommandRequest,
    CommandResult,
    CommandStatus,
    InvalidArguments,
    describe_validation_error,
    validate_args,
)
from common.mqtt import MqttConnection, MqttNotConnected, Received
from gateway.commands import ALL_COMMAND_HANDLERS, CommandHandler
from gateway.metrics import GatewayMetrics
from gateway.source import CommandFailed, VehicleSource

log = logging.getLogger(__name__)

type AfterCommand = Callable[[str], Awaitable[None]]


class CommandDispatcher:
    def __init__(
        self,
        mqtt: MqttConnection,
        source: VehicleSource,
        known_vins: set[str],
        *,
        prefix: str,
        timeout: float,
        after_success: AfterCommand,
        metrics: GatewayMetrics,
        handlers: dict[str, CommandHandler[Any]] | None = None,
    ) -> None:
        self.metrics = metrics
        self.mqtt = mqtt
        self.source = source
        self.known_vins = known_vins
        self.prefix = prefix
        self.timeout = timeout
        self.after_success = after_success
        self.handlers = handlers or ALL_COMMAND_HANDLERS
        self._vehicle_locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[object]] = set()

    async def on_message(self, message: Received) -> None:
        topic = message.topic
        parsed = topics.parse_vehicle_topic(self.prefix, topic)
        if parsed is None or not parsed.path.startswith(f"{topics.COMMAND_SEGMENT}/"):
            return
        command = parsed.path.split("/", 1)[1]
        if not message.payload:
            return  # an empty message is how a retained command gets cleared, not a request
        if message.retain:
            # A retained command would fire again after every restart: never act on one; clear it.
            log.warning("ignoring retained command on %s and clearing it", topic)
            await self.mqtt.publish(topic, b"", qos=1, retain=True)
            return
        self.spawn(self._handle(topic, parsed.vin, command, message.payload))

    def spawn(self, work: Coroutine[Any, Any, object]) -> None:
        """Run work in the background (its result is not needed); `drain` waits for it at shutdown."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, topic: str, vin: str, command: str, payload: bytes) -> None:
        request_id: UUID | None = None
        try:
            request = CommandRequest.model_validate_json(payload)
            request_id = request.id
        except ValidationError as exc:
            request_id = _salvage_id(payload)
            reason = f"bad request: {describe_validation_error(exc)}"
            await self._answer(topic, request_id, CommandStatus.REJECTED, reason)
            return

        async def started() -> None:
            """Tell the API the car is on it: from now on the command is running, not expirable."""
            answer_by = datetime.now(UTC) + timedelta(seconds=self.timeout)
            await self._answer(topic, request.id, CommandStatus.RUNNING, None, answer_by)

        status, error = await self.execute(
            vin,
            command,
            request.args,
            label=f"id {request.id}, by {request.requested_by}",
            expired=request.too_late_to_start,
            on_start=started,
        )
        await self._answer(topic, request_id, status, error)

    async def execute(
        self,
        vin: str,
        command: str,
        raw_args: dict[str, Any],
        *,
        label: str,
        expired: Callable[[], bool] = lambda: False,
        on_start: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[CommandStatus, str | None]:
        """Validate and run one command on one vehicle; a success forces a poll of it."""
        status, error = await self._execute(vin, command, raw_args, label, expired, on_start)
        self.metrics.commands.labels(command if command in self.handlers else "unknown", status.value).inc()
        if status is CommandStatus.SUCCEEDED:
            await self.after_success(vin)
        return status, error

    async def _execute(
        self,
        vin: str,
        command: str,
        raw_args: dict[str, Any],
        label: str,
        expired: Callable[[], bool],
        on_start: Callable[[], Awaitable[None]] | None,
    ) -> tuple[CommandStatus, str | None]:
        handler = self.handlers.get(command)
        if handler is None:
            return CommandStatus.REJECTED, f"unknown command {command!r}; known: {', '.join(self.handlers)}"
        if vin not in self.known_vins:
            return CommandStatus.REJECTED, f"unknown vehicle {vin}"
        if expired():
            return CommandStatus.EXPIRED, "the command expired before it could be sent"
        try:
            args = validate_args(command, raw_args)
        except InvalidArguments as exc:
            return CommandStatus.REJECTED, f"bad arguments: {exc}"
        lock = self._vehicle_locks.setdefault(vin, asyncio.Lock())
        async with lock:  # one command at a time per car, as the vehicle itself accepts them
            if expired():
                return CommandStatus.EXPIRED, "the command expired while waiting for the previous one"
            if on_start is not None:
                try:
                    await on_start()
                except (MqttNotConnected, aiomqtt.MqttError) as exc:
                    return CommandStatus.FAILED, f"not started: its running status could not be published ({exc})"
            log.info("executing %s on %s (%s)", command, vin, label)
            try:
                await asyncio.wait_for(handler.execute(self.source.control(vin), args), self.timeout)
            except CommandFailed as exc:
                return CommandStatus.FAILED, str(exc)
            except TimeoutError:
                return CommandStatus.FAILED, f"the vehicle did not answer within {self.timeout:g}s"
            except Exception:
                log.exception("command %s on %s failed unexpectedly", command, vin)
                return CommandStatus.FAILED, "unexpected error"
        return CommandStatus.SUCCEEDED, None

    async def _answer(
        self,
        topic: str,
        request_id: UUID | None,
        status: CommandStatus,
        error: str | None,
        answer_by: datetime | None = None,
    ) -> None:
        if request_id is None:
            log.warning("command on %s has no usable id (%s); answering without one", topic, error)
        result = CommandResult(id=request_id, status=status, error=error, answer_by=answer_by)
        log.info("command on %s: %s%s", topic, status.value, f" ({error})" if error else "")
        await self.mqtt.publish(f"{topic}/{topics.RESULT_SUFFIX}", result.model_dump_json(), qos=1)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)


def _salvage_id(payload: bytes) -> UUID | None:
    """The id of a request that failed validation, so its sender still learns why."""
    try:
        data = json.loads(payload)
        return UUID(str(data["id"]))
    except (ValueError, TypeError, KeyError):
        return None
