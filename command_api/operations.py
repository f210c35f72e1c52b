"""What operators read in the console: the fleet's command audit, dead letters and alerts.

For services and operators (an API key), like `/metrics`; frontend users get 403.
"""

from __future__ import annotations

from typing import Any

from command_api import audit
from command_api.auth import Principal
from command_api.errors import ApiError
from common.database import Connection

MAX_ROWS = 200

RECENT_COMMANDS = "SELECT * FROM commands ORDER BY created_at DESC LIMIT $1"
RECENT_DEAD_LETTERS = """
SELECT id, received_at, topic, reason, octet_length(payload) AS payload_bytes,
       substring(payload FROM 1 FOR 200) AS payload_start
FROM dead_letters ORDER BY received_at DESC, id DESC LIMIT $1
"""


def require_operator(principal: Principal) -> None:
    if principal.kind != "service":
        raise ApiError(403, "forbidden", "operations data is for services and operators: use an API key")


async def recent_commands(conn: Connection, limit: int) -> dict[str, Any]:
    return {"commands": [audit.command_json(r) for r in await conn.fetch(RECENT_COMMANDS, limit)]}


async def recent_dead_letters(conn: Connection, limit: int) -> dict[str, Any]:
    rows = [dict(r) for r in await conn.fetch(RECENT_DEAD_LETTERS, limit)]
    for row in rows:  # any bytes at all may have arrived: show them as text, safely
        row["payload_start"] = row["payload_start"].decode("utf-8", "replace").replace("\x00", "\ufffd")
    return {"dead_letters": rows, "total": await conn.fetchval("SELECT count(*) FROM dead_letters")}
