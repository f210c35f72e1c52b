"""Command status changes (`sent`, the results) written in batches: one statement carries every
change queued while the previous one was being written.

Under load, commands share statements instead of queuing for connections, each statement a round
trip; alone, a change is written at once. Each change keeps its own rule (`sent` only over
`queued`; a result over `queued`, `sent` or `expired`). In one batch a result replaces its
command's `sent`, and the first result of a command stands (a broker may deliver one twice).
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

# audit.COLUMNS is a constant; the statement takes no caller input but its arrays.
WRITE = (
    "UPDATE commands AS c SET status = u.status,"  # noqa: S608
    " error = CASE WHEN u.status = 'sent' THEN c.error ELSE u.error END,"
    " finished_at = CASE WHEN u.status = 'sent' THEN c.finished_at ELSE u.finished_at END,"
    " updated_at = now()"
    " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) AS u(id, status, error, finished_at)"
    " WHERE c.id = u.id AND CASE WHEN u.status = 'sent' THEN c.status = 'queued'"
    " ELSE c.status IN ('queued', 'sent', 'expired') END"
    f" RETURNING {', '.join('c.' + name for name in audit.COLUMN_NAMES)}"
)


@dataclass(frozen=True)
class Change:
    status: str
    error: str | None
    finished_at: datetime | None


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

    def record(self, command_id: UUID, status: str, error: str | None, finished_at: datetime) -> Written:
        """The command as it stands after the change; None when its rule left it as it was."""
        return self._queue(command_id, Change(status, error, finished_at))

    def _queue(self, command_id: UUID, change: Change) -> Written:
        future: Written = asyncio.get_running_loop().create_future()
        if (earlier := self._queued.get(command_id)) is not None:
            if earlier[0].status != SENT:  # a result is queued: the first one stands, `sent` is moot
                if change.status == SENT:
                    future.set_result(None)
                    return future
                return earlier[1]  # the same result again (a broker's duplicate delivery)
            earlier[1].set_result(None)
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
            for command_id, (_change, future) in batch.items():
                if future.done():
                    continue
                if rows is None:
                    future.set_exception(ConnectionError("the command's status could not be written"))
                else:
                    future.set_result(written.get(command_id))

    async def _write(self, batch: Pending) -> list[asyncpg.Record] | None:
        ids = list(batch)
        changes = [change for change, _ in batch.values()]
        args = (ids, [c.status for c in changes], [c.error for c in changes], [c.finished_at for c in changes])
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
