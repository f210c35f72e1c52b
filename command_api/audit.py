"""The `commands` table: every command's lifecycle and who asked."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from common.database import Connection


async def record_queued(
    conn: Connection, command_id: UUID, vin: str, command: str, args: dict[str, Any], requested_by: str
) -> None:
    await conn.execute(
        "INSERT INTO commands (id, vin, command, args, status, requested_by) VALUES ($1, $2, $3, $4, 'queued', $5)",
        command_id,
        vin,
        command,
        json.dumps(args),
        requested_by,
    )


async def record_status(
    conn: Connection,
    command_id: UUID,
    status: str,
    error: str | None = None,
    finished_at: datetime | None = None,
) -> None:
    await conn.execute(
        "UPDATE commands SET status = $2, error = $3, finished_at = $4, updated_at = now() WHERE id = $1",
        command_id,
        status,
        error,
        finished_at,
    )
