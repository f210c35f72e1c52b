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

import asyncpg
from pydantic import ValidationError

from command_api import audit
from command_api.audit_inserts import AuditInserts
from command_api.auth import Principal
from command_api.errors import ApiError
from command_api.status_writer import StatusWriter
from common import topics
from common.commands import CommandRequest, CommandResult, CommandStatus
from common.database import DATABASE_ERRORS
from common.mqtt import MqttConnection

log = logging.getLogger(__name__)

EXPIRY_SWEEP_EVERY = 5.0


class CommandRelay:
    """Publishes requests; hands each waiter its command once the result with its id is recorded."""

    def __init__(self, mqtt: MqttConnection, prefix: str) -> None:
        self.mqtt = mqtt
        self.prefix = prefix
        self._pending: dict[UUID, asyncio.Future[dict[str, Any]]] = {}

    def result_subscription(self) -> tuple[str, int]:
        return topics.command_result_filter(self.prefix), 1

    @staticmethod
    def parse_result(topic: str, payload: bytes) -> CommandResult | None:
        try:
            return CommandResult.model_validate_json(payload)
        except ValidationError as exc:
            log.warning("ignoring a malformed command result on %s: %s", topic, exc.errors()[0]["msg"])
            return None

    def waits_for(self, command_id: UUID) -> bool:
        return command_id in self._pending

    def resolve(self, command_id: UUID, recorded: dict[str, Any]) -> None:
        if (future := self._pending.get(command_id)) is not None and not future.done():
            future.set_result(recorded)

    async def send(
        self, account: str, vin: str, command: str, request: CommandRequest
    ) -> asyncio.Future[dict[str, Any]]:
        """The request published; the future its recorded result resolves, which the caller
        cancels when it stops waiting (a result that comes later is recorded all the same)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = future
        future.add_done_callback(lambda _f: self._pending.pop(request.id, None))
        topic = topics.VehicleTopics(self.prefix, account, vin).command(command)
        try:
            await self.mqtt.publish(topic, request.model_dump_json(), qos=1)
        except BaseException:
            future.cancel()
            raise
        return future


class CommandService:
    """A command's audit row is committed before it is published, in one statement with the vehicle's
    account and with every other command submitted meanwhile (AuditInserts). After it, `sent` and the
    result go through the StatusWriter, which writes every change pending at once in one statement,
    and the waiter is answered with the recorded row."""

    def __init__(self, pool: asyncpg.Pool, relay: CommandRelay, timeout: float) -> None:
        self.pool = pool
        self.relay = relay
        self.timeout = timeout
        self.inserts = AuditInserts(pool)
        self.statuses = StatusWriter(pool)
        self._answers: set[asyncio.Task[None]] = set()

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
        inserted = await self.inserts.insert(
            audit.NewCommand(command_id, vin, command, args, principal.requested_by, idempotency_key, expires_at)
        )
        if inserted.account is None:
            raise ApiError(404, "unknown_vehicle", f"no vehicle with VIN {vin}")
        if not inserted.new:
            assert idempotency_key is not None
            async with self.pool.acquire() as conn:
                earlier = await audit.by_idempotency_key(conn, principal.requested_by, idempotency_key)
            assert earlier is not None
            return self._replay(audit.command_json(earlier), vin, command, args), True
        request = CommandRequest(id=command_id, args=args, requested_by=principal.requested_by, expires_at=expires_at)
        try:
            future = await self.relay.send(inserted.account, vin, command, request)
        except Exception as exc:
            async with self.pool.acquire() as conn:
                await audit.mark_failed(conn, command_id, f"not sent: {exc}")
            raise
        sent = self.statuses.mark_sent(command_id)
        try:
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(future, wait), False
        finally:
            future.cancel()  # no one waits for it any more, a caller gone away included
        with contextlib.suppress(ConnectionError):  # the read-back below says what was written
            await sent  # the answer must not predate its own `sent`
        async with self.pool.acquire() as conn:
            recorded = await audit.get(conn, command_id)
        assert recorded is not None
        return audit.command_json(recorded), False

    def on_result(self, topic: str, payload: bytes) -> None:
        """Record a result, whoever waits for it; results do not queue behind each other's writes."""
        result = self.relay.parse_result(topic, payload)
        if result is None or result.id is None:
            return
        written = self.statuses.record(result.id, result.status, result.error, result.finished_at, result.answer_by)
        if result.status is not CommandStatus.RUNNING and self.relay.waits_for(result.id):
            task = asyncio.create_task(self._answer(result.id, written))
            self._answers.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._answers.discard)

    async def _answer(self, command_id: UUID, written: asyncio.Future[asyncpg.Record | None]) -> None:
        try:
            row = await written
            if row is None:  # already final (a repeated result): answer with what is recorded
                async with self.pool.acquire() as conn:
                    row = await audit.get(conn, command_id)
        except (ConnectionError, *DATABASE_ERRORS):
            return  # logged by the writer; the waiter times out and reads the command back
        if row is not None:
            self.relay.resolve(command_id, audit.command_json(row))

    async def finish_writes(self) -> None:
        """At shutdown: let the audit writes under way land."""
        await self.statuses.finish()

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

    async def sweep_expired(self) -> None:
        """Mark commands nobody answered in time as `expired`, for ever (a cleanup_ctx task)."""
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_EVERY)
            try:
                async with self.pool.acquire() as conn:
                    expired, unanswered = await audit.expire_overdue(conn)
                if expired:
                    log.warning("%d command(s) expired before the gateway started them", expired)
                if unanswered:
                    log.warning("%d started command(s) failed: no outcome arrived by their answer_by", unanswered)
            except DATABASE_ERRORS as exc:
                log.warning("could not expire overdue commands: %s", exc)
