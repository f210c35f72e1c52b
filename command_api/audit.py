"""The `commands` table: every command's lifecycle (queued, sent, succeeded, failed, rejected,
expired) and who asked: the audit trail."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from common.commands import CommandResult
from common.database import Connection

COLUMNS = (
    "id, vin, command, args, status, error, requested_by, idempotency_key, created_at, updated_at, finished_at, "
    "expires_at"
)
# Queries over the constant column list (no caller input is ever formatted into SQL).
INSERT = (
    "INSERT INTO commands (id, vin, command, args, status, requested_by, idempotency_key, expires_at)"  # noqa: S608
    " VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7)"
    " ON CONFLICT (requested_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
    f" RETURNING {COLUMNS}"
)
BY_IDEMPOTENCY_KEY = f"SELECT {COLUMNS} FROM commands WHERE requested_by = $1 AND idempotency_key = $2"  # noqa: S608
BY_ID = f"SELECT {COLUMNS} FROM commands WHERE id = $1"  # noqa: S608
RECENT = f"SELECT {COLUMNS} FROM commands WHERE vin = $1 ORDER BY created_at DESC LIMIT $2"  # noqa: S608
EXPIRE_OVERDUE = (
    "UPDATE commands SET status = 'expired', error = 'no answer from the vehicle before it expired',"
    " finished_at = now(), updated_at = now()"
    " WHERE status IN ('queued', 'sent') AND expires_at < now() - interval '2 seconds'"
)
"""The 2 s grace: a result may still be on its way when a command's time is up."""
TERMINAL = frozenset({"succeeded", "failed", "rejected", "expired"})


async def insert(
    conn: Connection,
    command_id: UUID,
    vin: str,
    command: str,
    args: dict[str, Any],
    requested_by: str,
    idempotency_key: str | None,
    expires_at: datetime,
) -> asyncpg.Record | None:
    """The new row; None when this caller already used the idempotency key."""
    return await conn.fetchrow(
        INSERT,
        command_id,
        vin,
        command,
        json.dumps(args),
        requested_by,
        idempotency_key,
        expires_at,
    )


async def by_idempotency_key(conn: Connection, requested_by: str, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(BY_IDEMPOTENCY_KEY, requested_by, key)


async def get(conn: Connection, command_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(BY_ID, command_id)


async def recent(conn: Connection, vin: str, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(RECENT, vin, limit)


async def mark_sent(conn: Connection, command_id: UUID) -> None:
    await conn.execute(
        "UPDATE commands SET status = 'sent', updated_at = now() WHERE id = $1 AND status = 'queued'", command_id
    )


async def mark_failed(conn: Connection, command_id: UUID, error: str) -> None:
    await conn.execute(
        "UPDATE commands SET status = 'failed', error = $2, finished_at = now(), updated_at = now()"
        " WHERE id = $1 AND status = 'queued'",
        command_id,
        error,
    )


async def record_result(conn: Connection, result: CommandResult) -> bool:
    """The gateway's answer; it also overrides an `expired` set while the answer was on its way."""
    status = await conn.execute(
        "UPDATE commands SET status = $2, error = $3, finished_at = $4, updated_at = now()"
        " WHERE id = $1 AND status IN ('queued', 'sent', 'expired')",
        result.id,
        result.status.value,
        result.error,
        result.finished_at,
    )
    return status != "UPDATE 0"


async def expire_overdue(conn: Connection) -> int:
    status = await conn.execute(EXPIRE_OVERDUE)
    return int(status.rsplit(" ", 1)[-1])


def command_json(row: asyncpg.Record) -> dict[str, Any]:
    body = dict(row)
    body["args"] = json.loads(body["args"])
    return body
