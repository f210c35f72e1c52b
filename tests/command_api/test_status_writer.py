"""Command status changes written in batches, each by its own rule, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from command_api import audit
from command_api.status_writer import WRITE, StatusWriter
from common.database import create_pool
from common.settings import DatabaseSettings
from tests.command_api.conftest import AUDIT_VIN
from tests.helpers import generic_plan_scans


async def new_commands(pool: asyncpg.Pool, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    expires = datetime.now(UTC) + timedelta(seconds=30)
    async with pool.acquire() as conn:
        inserted = await audit.insert(
            conn, [audit.NewCommand(i, AUDIT_VIN, "lock", {}, "test", None, expires) for i in ids]
        )
    assert all(one.new for one in inserted)
    return ids


def status(row: asyncpg.Record | None) -> str | None:
    return None if row is None else str(row["status"])


async def status_of(pool: asyncpg.Pool, command_id: uuid.UUID) -> str:
    async with pool.acquire() as conn:
        row = await audit.get(conn, command_id)
    assert row is not None
    return str(row["status"])


async def test_changes_queued_together_share_one_statement(pool: asyncpg.Pool) -> None:
    ids = await new_commands(pool, 50)
    writer = StatusWriter(pool)
    now = datetime.now(UTC)
    written = [writer.mark_sent(i) for i in ids[:25]] + [writer.record(i, "succeeded", None, now) for i in ids[25:]]
    rows = await asyncio.gather(*written)
    assert writer.statements == 1
    assert [status(row) for row in rows] == ["sent"] * 25 + ["succeeded"] * 25
    assert {await status_of(pool, i) for i in ids[:25]} == {"sent"}


async def test_sent_never_undoes_a_result(pool: asyncpg.Pool) -> None:
    first, second = await new_commands(pool, 2)
    writer = StatusWriter(pool)
    now = datetime.now(UTC)
    # The same batch: the result replaces the `sent` queued before it. A `sent` after it (a result
    # read before its command's send returned) is moot, and done once the result is written: the
    # API reads the row back after it.
    sent, result, late_sent = (
        writer.mark_sent(first),
        writer.record(first, "failed", "no", now),
        writer.mark_sent(first),
    )
    assert await sent is None
    assert status(await late_sent) == "failed"
    assert await status_of(pool, first) == "failed"
    assert status(await result) == "failed"
    # Separate batches: `sent` only moves a queued command.
    await writer.record(second, "succeeded", None, now)
    assert await writer.mark_sent(second) is None
    assert await status_of(pool, second) == "succeeded"
    assert await status_of(pool, first) == "failed"


async def test_a_final_result_is_not_written_twice(pool: asyncpg.Pool) -> None:
    (command_id,) = await new_commands(pool, 1)
    writer = StatusWriter(pool)
    now = datetime.now(UTC)
    assert status(await writer.record(command_id, "succeeded", None, now)) == "succeeded"
    assert await writer.record(command_id, "failed", "again", now) is None
    assert await status_of(pool, command_id) == "succeeded"


async def test_a_database_outage_fails_the_change_instead_of_hanging() -> None:
    pool = await create_pool(DatabaseSettings.from_env({"DATABASE_URL": "postgresql://x@127.0.0.1:1/none"}), min_size=0)
    writer = StatusWriter(pool)
    try:
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(writer.mark_sent(uuid.uuid4()), 30)
    finally:
        await pool.close()


async def test_a_result_delivered_twice_is_answered_as_recorded(pool: asyncpg.Pool) -> None:
    """QoS 1 is at least once: a result can arrive again (a redelivery after a reconnect)."""
    (command_id,) = await new_commands(pool, 1)
    writer = StatusWriter(pool)
    now = datetime.now(UTC)
    first, again = writer.record(command_id, "succeeded", None, now), writer.record(command_id, "failed", "x", now)
    assert [status(await first), status(await again)] == ["succeeded", "succeeded"]


async def test_an_outcome_after_expired_is_not_recorded(pool: asyncpg.Pool) -> None:
    """The caller was told `expired`: what the record says must never change after it."""
    (command_id,) = await new_commands(pool, 1)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE commands SET expires_at = now() - interval '1 minute' WHERE id = $1", command_id)
        assert await audit.expire_overdue(conn) == (1, 0)
    writer = StatusWriter(pool)
    assert await writer.record(command_id, "succeeded", None, datetime.now(UTC)) is None
    assert await writer.record(command_id, "running", None, datetime.now(UTC), datetime.now(UTC)) is None
    assert await status_of(pool, command_id) == "expired"


async def test_a_running_command_is_not_expired_but_waits_for_its_outcome(pool: asyncpg.Pool) -> None:
    waiting, lost = await new_commands(pool, 2)
    writer = StatusWriter(pool)
    now = datetime.now(UTC)
    running = await writer.record(waiting, "running", None, now, now + timedelta(minutes=1))
    assert running is not None
    assert (status(running), running["answer_by"], running["finished_at"]) == (
        "running",
        now + timedelta(minutes=1),
        None,
    )
    assert await writer.mark_sent(waiting) is None  # `sent` comes late: a command only moves forward
    await writer.record(lost, "running", None, now, now - timedelta(seconds=5))  # its gateway went quiet
    async with pool.acquire() as conn:
        await conn.execute("UPDATE commands SET expires_at = now() - interval '1 minute'")
        assert await audit.expire_overdue(conn) == (0, 1)
    assert await status_of(pool, waiting) == "running"
    assert status(await writer.record(waiting, "succeeded", None, datetime.now(UTC))) == "succeeded"
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, error FROM commands WHERE id = $1", lost)
    assert row is not None
    assert (row["status"], "may have been carried out" in row["error"]) == ("failed", True)


async def test_an_outcome_queued_with_running_replaces_it(pool: asyncpg.Pool) -> None:
    (command_id,) = await new_commands(pool, 1)
    writer = StatusWriter(pool)
    now = datetime.now(UTC)
    sent, running, outcome = (
        writer.mark_sent(command_id),
        writer.record(command_id, "running", None, now, now + timedelta(minutes=1)),
        writer.record(command_id, "succeeded", None, now),
    )
    assert (await sent, await running) == (None, None)
    assert status(await outcome) == "succeeded"


async def test_progress_is_written_in_place_and_only_the_outcome_takes_index_entries(pool: asyncpg.Pool) -> None:
    """`sent` and `running` change no indexed column, so with room in the page PostgreSQL writes each
    beside the row's old version (a HOT update) instead of adding an entry to every index."""
    (command_id,) = await new_commands(pool, 1)
    now = datetime.now(UTC)
    hot_updates = "SELECT pg_stat_get_xact_tuples_hot_updated('commands'::regclass)"
    async with pool.acquire() as conn, conn.transaction():
        for status_, answer_by in (("sent", None), ("running", now + timedelta(minutes=1)), ("succeeded", None)):
            assert await conn.fetch(WRITE, [command_id], [status_], [None], [now], [answer_by])
        # the outcome sets `finished_at`, which takes the command out of the unfinished commands' index
        assert await conn.fetchval(hot_updates) == 2


@pytest.mark.parametrize("sweep", [audit.EXPIRE_OVERDUE, audit.FAIL_UNANSWERED], ids=["expire", "fail-unanswered"])
async def test_the_sweeps_read_the_unfinished_commands_by_their_index(pool: asyncpg.Pool, sweep: str) -> None:
    # They run every few seconds; a scan would read every command ever stored.
    fill = [
        "INSERT INTO commands (id, vin, command, status, expires_at, finished_at)"
        " SELECT gen_random_uuid(), 'V', 'lock', 'succeeded', now() - i * interval '1 s', now() - i * interval '1 s'"
        " FROM generate_series(1, 20000) AS i",
        "ANALYZE commands",
    ]
    scans = await generic_plan_scans(pool, sweep, [], ["commands"], fill)
    assert ("Seq Scan", "commands") not in scans
