"""New commands' audit rows written in batches, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from command_api import audit
from command_api.audit_inserts import AuditInserts
from common.settings import DatabaseSettings
from local_stack.ports import free_port
from tests.command_api.conftest import AUDIT_VIN


def new(vin: str = AUDIT_VIN, key: str | None = None, requested_by: str = "test") -> audit.NewCommand:
    expires = datetime.now(UTC) + timedelta(seconds=30)
    return audit.NewCommand(uuid.uuid4(), vin, "lock", {"n": 1}, requested_by, key, expires)


async def stored(pool: asyncpg.Pool) -> set[uuid.UUID]:
    async with pool.acquire() as conn:
        return {row["id"] for row in await conn.fetch("SELECT id FROM commands")}


async def test_commands_submitted_together_share_one_statement(pool: asyncpg.Pool) -> None:
    inserts = AuditInserts(pool)
    commands = [new() for _ in range(20)]
    results = await asyncio.gather(*(inserts.insert(c) for c in commands))
    assert inserts.statements == 1
    assert [r.account for r in results] == ["acct"] * 20
    assert [r.new for r in results] == [True] * 20
    assert await stored(pool) == {c.id for c in commands}
    async with pool.acquire() as conn:
        assert {row["status"] for row in await conn.fetch("SELECT status FROM commands")} == {"queued"}


async def test_each_command_in_a_batch_gets_its_own_answer(pool: asyncpg.Pool) -> None:
    inserts = AuditInserts(pool)
    first, unknown, again, other_caller = (
        new(key="k1"),
        new(vin="NOSUCHVIN00000000"),
        new(key="k1"),
        new(key="k1", requested_by="someone-else"),
    )
    results = await asyncio.gather(*(inserts.insert(c) for c in (first, unknown, again, other_caller)))
    assert inserts.statements == 1
    assert (results[0].account, results[0].new) == ("acct", True)
    assert (results[1].account, results[1].new) == (None, False)  # no such vehicle: nothing inserted
    assert (results[2].account, results[2].new) == ("acct", False)  # the key was used: a replay
    assert results[3].new  # a key is each caller's own
    assert await stored(pool) == {first.id, other_caller.id}


async def test_a_row_the_database_refuses_fails_only_its_own_command(pool: asyncpg.Pool) -> None:
    inserts = AuditInserts(pool)
    good, bad, also_good = new(), new(key="nul\x00byte"), new()  # PostgreSQL's text holds no NUL
    results = await asyncio.gather(*(inserts.insert(c) for c in (good, bad, also_good)), return_exceptions=True)
    assert isinstance(results[1], asyncpg.PostgresError)
    assert [type(r) for r in (results[0], results[2])] == [audit.Inserted, audit.Inserted]
    assert inserts.statements == 4  # the batch, then each command alone
    assert await stored(pool) == {good.id, also_good.id}


async def test_without_a_database_every_waiting_command_gets_the_error(db_settings: DatabaseSettings) -> None:
    url = db_settings.url.get_secret_value().rsplit("@", 1)[0] + f"@127.0.0.1:{free_port()}/nowhere"
    pool = await asyncpg.create_pool(url, min_size=0)
    try:
        inserts = AuditInserts(pool)
        results = await asyncio.gather(*(inserts.insert(new()) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, OSError) for r in results), results
        assert inserts.statements == 0
    finally:
        await pool.close()
