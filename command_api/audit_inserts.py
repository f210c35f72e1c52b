"""New commands' audit rows written in batches: one statement (and one commit) carries every command
submitted while the previous one was being written.

Under load, commands share statements instead of each taking a connection for a round trip and a
commit of its own; alone, a command is written at once. A batch the database refuses is written
again one command at a time, so that a bad row fails only its own command.
"""

from __future__ import annotations

import asyncio

import asyncpg

from command_api import audit
from common.database import DATABASE_ERRORS

type Queued = list[tuple[audit.NewCommand, asyncio.Future[audit.Inserted]]]


class AuditInserts:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._queued: Queued = []
        self._writer: asyncio.Task[None] | None = None
        self.statements = 0

    def insert(self, command: audit.NewCommand) -> asyncio.Future[audit.Inserted]:
        """What became of the command once its row is committed; raises what the database raised."""
        future: asyncio.Future[audit.Inserted] = asyncio.get_running_loop().create_future()
        self._queued.append((command, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        return future

    async def _write_all(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            await self._write(batch)

    async def _write(self, batch: Queued) -> None:
        try:
            async with self.pool.acquire() as conn:
                self.statements += 1
                results = await audit.insert(conn, [command for command, _ in batch])
        except asyncpg.PostgresError as exc:
            if len(batch) > 1:  # the data, not the connection: each alone, to fail only the bad one
                for one in batch:
                    await self._write([one])
                return
            _settle(batch, exc)
        except DATABASE_ERRORS as exc:
            _settle(batch, exc)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # a waiter that went away cancels its future
                    future.set_result(result)


def _settle(batch: Queued, exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
