"""The `commands` table: every command's lifecycle (queued, sent, running, then succeeded, failed,
rejected or expired) and who asked: the audit trail."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from common.database import Connection

COLUMNS = (
    "id, vin, command, args, status, error, requested_by, idempotency_key, created_at, updated_at, finished_at, "
    "expires_at, answer_by"
)
COLUMN_NAMES = tuple(COLUMNS.split(", "))
# Queries over the constant column list (no caller input is ever formatted into SQL).
# New commands (a batch) and their vehicles' accounts in one round trip, a row per command in the
# order given: no account for an unknown vehicle (and nothing inserted), `inserted` false when this
# caller already used the idempotency key (an earlier command, or an earlier one in the batch).
INSERT = (
    "WITH new AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::text[],"
    " $7::timestamptz[]) WITH ORDINALITY AS n(id, vin, command, args, requested_by, idempotency_key, expires_at, n)),"
    " inserted AS ("
    " INSERT INTO commands (id, vin, command, args, status, requested_by, idempotency_key, expires_at)"
    " SELECT new.id, new.vin, new.command, new.args, 'queued', new.requested_by, new.idempotency_key, new.expires_at"
    " FROM new JOIN vehicles USING (vin) ORDER BY new.n"
    " ON CONFLICT (requested_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
    " RETURNING id)"
    " SELECT vehicles.account, inserted.id IS NOT NULL AS inserted FROM new LEFT JOIN vehicles USING (vin)"
    " LEFT JOIN inserted ON inserted.id = new.id ORDER BY new.n"
)
BY_IDEMPOTENCY_KEY = f"SELECT {COLUMNS} FROM commands WHERE requested_by = $1 AND idempotency_key = $2"  # noqa: S608
BY_ID = f"SELECT {COLUMNS} FROM commands WHERE id = $1"  # noqa: S608
RECENT = f"SELECT {COLUMNS} FROM commands WHERE vin = $1 ORDER BY created_at DESC LIMIT $2"  # noqa: S608
EXPIRE_OVERDUE = (
    "UPDATE commands SET status = 'expired', error = 'no answer from the vehicle before it expired',"
    " finished_at = now(), updated_at = now()"
    " WHERE finished_at IS NULL AND status IN ('queued', 'sent') AND expires_at < now() - interval '2 seconds'"
)
"""The 2 s grace: a result may still be on its way when a command's time is up."""
FAIL_UNANSWERED = (
    "UPDATE commands SET status = 'failed', finished_at = now(), updated_at = now(),"
    " error = 'the vehicle started the command but no outcome arrived: it may have been carried out'"
    " WHERE finished_at IS NULL AND status = 'running' AND answer_by < now() - interval '2 seconds'"
)
"""A started command whose gateway went quiet (it died, or its answer was lost): its outcome is unknown."""
TERMINAL = frozenset({"succeeded", "failed", "rejected", "expired"})


@dataclass(frozen=True)
class Inserted:
    account: str | None
    """The vehicle's SAIC account; None: no such vehicle (and nothing inserted)."""
    new: bool
    """False when this caller already used the idempotency key (or there is no such vehicle)."""


@dataclass(frozen=True)
class NewCommand:
    id: UUID
    vin: str
    command: str
    args: dict[str, Any]
    requested_by: str
    idempotency_key: str | None
    expires_at: datetime


async def insert(conn: Connection, commands: Sequence[NewCommand]) -> list[Inserted]:
    """The commands' audit rows, `queued`; what became of each, in the order given."""
    rows = await conn.fetch(
        INSERT,
        [c.id for c in commands],
        [c.vin for c in commands],
        [c.command for c in commands],
        [json.dumps(c.args) for c in commands],
        [c.requested_by for c in commands],
        [c.idempotency_key for c in commands],
        [c.expires_at for c in commands],
    )
    return [Inserted(row["account"], row["inserted"]) for row in rows]


async def by_idempotency_key(conn: Connection, requested_by: str, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(BY_IDEMPOTENCY_KEY, requested_by, key)


async def get(conn: Connection, command_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(BY_ID, command_id)


async def recent(conn: Connection, vin: str, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(RECENT, vin, limit)


async def mark_failed(conn: Connection, command_id: UUID, error: str) -> None:
    await conn.execute(
        "UPDATE commands SET status = 'failed', error = $2, finished_at = now(), updated_at = now()"
        " WHERE id = $1 AND status = 'queued'",
        command_id,
        error,
    )


async def expire_overdue(conn: Connection) -> tuple[int, int]:
    """(commands expired before they started, started commands failed for want of an outcome)."""
    async with conn.transaction():
        expired = await conn.execute(EXPIRE_OVERDUE)
        unanswered = await conn.execute(FAIL_UNANSWERED)
    return int(expired.rsplit(" ", 1)[-1]), int(unanswered.rsplit(" ", 1)[-1])


def command_json(row: asyncpg.Record) -> dict[str, Any]:
    body = {name: row[name] for name in COLUMN_NAMES}
    body["args"] = json.loads(body["args"])
    return body
