"""Command status changes (`sent`, `running`, the outcomes) written in batches: one statement
carries every change queued while the previous one was being written.

Under load, commands share statements instead of queuing for connections, each statement a round
trip; alone, a change is written at once. A command only moves forward: `queued` -> `sent` ->
`running` -> an outcome, and an outcome is final (a result that comes after `expired` is not
recorded: the API has answered, and the gateway never starts an expired command). In one batch a
later stage replaces an earlier one, and the first outcome of a command stands (a broker may
deliver one twice).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from command_api import audit
from common.backoff import Backoff
from common.database import DATABASE_ERRORS

log = logging.getLogger(__name__)

ATTEMPTS = 5
SENT = "sent"
RUNNING = "running"
STAGE = {SENT: 0, RUNNING: 1}
"""How far each progress status is; every outcome is 2, the last stage."""
FINAL_STAGE = 2

# audit.COLUMNS is a constant; the statement takes no caller input but its arrays.
WRITE = (
    "UPDATE commands AS c SET status = u.status,"  # noqa: S608
    " error = CASE WHEN u.status IN ('sent', 'running') THEN c.error ELSE u.error END,"
    " finished_at = CASE WHEN u.status IN ('sent', 'running') THEN c.finished_at ELSE u.finished_at END,"
    " answer_by = COALESCE(u.answer_by, c.answer_by),"
    " updated_at = now()"
    " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])"
    " AS u(id, status, error, finished_at, answer_by)"
    " WHERE c.id = u.id AND c.status = ANY(CASE u.status WHEN 'sent' THEN ARRAY['queued']"
    " WHEN 'running' THEN ARRAY['queued', 'sent'] ELSE ARRAY['queued', 'sent', 'running'] END)"
    f" RETURNING {', '.join('c.' + name for name in audit.COLUMN_NAMES)}"
)


@dataclass(frozen=True)
class Change:
    status: str
    error: str | None
    finished_at: datetime | None
    answer_by: datetime | None = None

    @property
    def stage(self) -> int:
        return STAGE.get(self.status, FINAL_STAGE)


type Written = asyncio.Future[asyncpg.Record | None]


def _seen(future: Written) -> None:
    """A change nobody awaits (no caller waits for the result) must not end in asyncio's "exception
    was never retrieved": the writer has logged the failure already."""
    if not future.cancelled():
        future.exception()


type Pending = dict[UUID, tuple[Change, Written]]


class StatusWriter:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._queued: Pending = {}
        self._writer: asyncio.Task[None] | None = None
        self.statements = 0

    def mark_sent(self, command_id: UUID) -> Written:
        return self._queue(command_id, Change(SENT, None, None))

    def record(
        self, command_id: UUID, status: str, error: str | None, finished_at: datetime, answer_by: datetime | None = None
    ) -> Written:
        """The command as it stands after the change; None when its rule left it as it was."""
        return self._queue(command_id, Change(status, error, finished_at, answer_by))

    def _queue(self, command_id: UUID, change: Change) -> Written:
        if (earlier := self._queued.get(command_id)) is not None:
            if change.stage <= earlier[0].stage:
                # Behind what is queued already (a result can be read before its command's send
                # returns), or the same stage again (a broker's duplicate delivery): the queued
                # change stands, and this one is done when it is written, so that a read-back after
                # it sees at least that change.
                return earlier[1]
            earlier[1].set_result(None)
        future: Written = asyncio.get_running_loop().create_future()
        future.add_done_callback(_seen)
        self._queued[command_id] = (change, future)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        return future

    async def _write_all(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, {}
            rows = await self._write(batch)
            written = {row["id"]: row for row in rows} if rows is not None else {}
            for command_id, (change, future) in batch.items():
                if future.done():
                    continue
                if rows is None:
                    future.set_exception(ConnectionError("the command's status could not be written"))
                    continue
                future.set_result(written.get(command_id))
                if command_id not in written and change.stage == FINAL_STAGE:
                    log.info("%s for command %s not recorded: it was final already", change.status, command_id)

    async def _write(self, batch: Pending) -> list[asyncpg.Record] | None:
        ids = list(batch)
        changes = [change for change, _ in batch.values()]
        args = (
            ids,
            [c.status for c in changes],
            [c.error for c in changes],
            [c.finished_at for c in changes],
            [c.answer_by for c in changes],
        )
        backoff = Backoff(initial=0.2, maximum=2)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.pool.acquire() as conn:
                    self.statements += 1
                    return await conn.fetch(WRITE, *args)
            except DATABASE_ERRORS as exc:
                if attempt == ATTEMPTS:
                    log.error("could not write the status of %d command(s): %s", len(ids), exc)
                    return None
                await asyncio.sleep(backoff.next_delay())
        return None

    async def finish(self) -> None:
        """At shutdown: let the changes under way land."""
        if self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer], timeout=5)
