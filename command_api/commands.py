"""Commands: the audit row first, then the request over MQTT, the result matched by id
(zigbee2mqtt's transaction pattern) and recorded whoever is still waiting for it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import aiomqtt
import asyncpg
from pydantic import ValidationError

from command_api import audit, vehicles
from command_api.auth import Principal
from command_api.errors import ApiError
from common import topics
from common.commands import CommandRequest, CommandResult
from common.database import DATABASE_ERRORS
from common.mqtt import MqttConnection

log = logging.getLogger(__name__)

EXPIRY_SWEEP_EVERY = 5.0


class CommandRelay:
    """Publishes requests; resolves each waiter when the result with its id arrives."""

    def __init__(self, mqtt: MqttConnection, prefix: str) -> None:
        self.mqtt = mqtt
        self.prefix = prefix
        self._pending: dict[UUID, asyncio.Future[CommandResult]] = {}

    def result_subscription(self) -> tuple[str, int]:
        return topics.command_result_filter(self.prefix), 1

    def parse_result(self, message: aiomqtt.Message) -> CommandResult | None:
        try:
            result = CommandResult.model_validate_json(message.payload if isinstance(message.payload, bytes) else b"")
        except ValidationError as exc:
            log.warning("ignoring a malformed command result on %s: %s", message.topic.value, exc.errors()[0]["msg"])
            return None
        if result.id is not None and (future := self._pending.get(result.id)) is not None and not future.done():
            future.set_result(result)
        return result

    async def send(
        self, account: str, vin: str, command: str, request: CommandRequest
    ) -> asyncio.Future[CommandResult]:
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = future
        future.add_done_callback(lambda _f: self._pending.pop(request.id, None))
        if request.expires_at is not None:  # nobody waits for ever: the entry goes when the command expires
            delay = (request.expires_at - datetime.now(UTC)).total_seconds() + 5
            asyncio.get_running_loop().call_later(delay, future.cancel)
        topic = topics.VehicleTopics(self.prefix, account, vin).command(command)
        try:
            await self.mqtt.publish(topic, request.model_dump_json(), qos=1)
        except BaseException:
            future.cancel()
            raise
        return future


class CommandService:
    def __init__(self, pool: asyncpg.Pool, relay: CommandRelay, timeout: float) -> None:
        self.pool = pool
        self.relay = relay
        self.timeout = timeout

    async def submit(
        self,
        principal: Principal,
        vin: str,
        command: str,
        args: dict[str, Any],
        idempotency_key: str | None,
        wait: float,
    ) -> tuple[dict[str, Any], bool]:
        """(the command as recorded, whether it is a replay of an earlier request with the same key)."""
        command_id = uuid.uuid4()
        expires_at = datetime.now(UTC) + timedelta(seconds=self.timeout)
        async with self.pool.acquire() as conn:
            account = await vehicles.vehicle_account(conn, vin)
            if account is None:
                raise ApiError(404, "unknown_vehicle", f"no vehicle with VIN {vin}")
            row = await audit.insert(
                conn, command_id, vin, command, args, principal.requested_by, idempotency_key, expires_at
            )
            if row is None:
                assert idempotency_key is not None
                earlier = await audit.by_idempotency_key(conn, principal.requested_by, idempotency_key)
                assert earlier is not None
                return self._replay(audit.command_json(earlier), vin, command, args), True
        request = CommandRequest(id=command_id, args=args, requested_by=principal.requested_by, expires_at=expires_at)
        try:
            future = await self.relay.send(account, vin, command, request)
        except Exception as exc:
            async with self.pool.acquire() as conn:
                await audit.mark_failed(conn, command_id, f"not sent: {exc}")
            raise
        async with self.pool.acquire() as conn:
            await audit.mark_sent(conn, command_id)
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(future), wait)
        async with self.pool.acquire() as conn:
            if future.done() and not future.cancelled():
                # The result handler records it too; whichever comes first, the answer is the audit row.
                await audit.record_result(conn, future.result())
            recorded = await audit.get(conn, command_id)
        assert recorded is not None
        return audit.command_json(recorded), False

    @staticmethod
    def _replay(earlier: dict[str, Any], vin: str, command: str, args: dict[str, Any]) -> dict[str, Any]:
        if (earlier["vin"], earlier["command"], earlier["args"]) != (vin, command, args):
            raise ApiError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request; use a new key for a new command",
                {"id": str(earlier["id"])},
            )
        return earlier

    async def on_result(self, message: aiomqtt.Message) -> None:
        result = self.relay.parse_result(message)
        if result is None or result.id is None:
            return
        async with self.pool.acquire() as conn:
            await audit.record_result(conn, result)

    async def sweep_expired(self) -> None:
        """Mark commands nobody answered in time as `expired`, for ever (a cleanup_ctx task)."""
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_EVERY)
            try:
                async with self.pool.acquire() as conn:
                    if count := await audit.expire_overdue(conn):
                        log.warning("%d command(s) expired without an answer from the vehicle", count)
            except DATABASE_ERRORS as exc:
                log.warning("could not expire overdue commands: %s", exc)
