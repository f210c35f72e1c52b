"""Telemetry history: a time range, a limit and keyset pagination (newest first) with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from aiohttp import web

from command_api.errors import ApiError
from common.database import Connection

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

QUERY = """
SELECT ts, soc, range_km, latitude, longitude, speed_kmh, charging, payload
FROM vehicle_telemetry
WHERE vin = $1 AND ($2::timestamptz IS NULL OR ts >= $2) AND ($3::timestamptz IS NULL OR ts < $3)
  AND ($4::timestamptz IS NULL OR ts < $4)
ORDER BY ts DESC
LIMIT $5
"""


def _timestamp(query: web.BaseRequest, name: str) -> datetime | None:
    text = query.query.get(name)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"`{name}` must be an ISO-8601 time, got {text[:40]!r}") from None
    if value.tzinfo is None:
        raise ApiError(400, "invalid_parameter", f"`{name}` needs a time zone (e.g. `Z` or `+00:00`)")
    return value


def _limit(request: web.BaseRequest) -> int:
    text = request.query.get("limit", str(DEFAULT_LIMIT))
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ApiError(400, "invalid_parameter", f"`limit` must be an integer from 1 to {MAX_LIMIT}, got {text[:20]!r}")
    return int(text)


def encode_cursor(ts: datetime) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": ts.isoformat()}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> datetime:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = datetime.fromisoformat(json.loads(raw)["before"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API returned") from None
    if value.tzinfo is None:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API returned")
    return value


async def page(conn: Connection, vin: str, request: web.BaseRequest) -> dict[str, Any]:
    since, until, limit = _timestamp(request, "from"), _timestamp(request, "to"), _limit(request)
    if since and until and since >= until:
        raise ApiError(400, "invalid_parameter", "`from` must be earlier than `to`")
    cursor = request.query.get("cursor")
    before = decode_cursor(cursor) if cursor else None
    rows = await conn.fetch(QUERY, vin, since, until, before, limit + 1)
    items = [
        {
            "ts": r["ts"],
            "soc": r["soc"],
            "range_km": r["range_km"],
            "latitude": r["latitude"],
            "longitude": r["longitude"],
            "speed_kmh": r["speed_kmh"],
            "charging": r["charging"],
            "values": json.loads(r["payload"]),
        }
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    return {"vin": vin, "items": items, "next_cursor": encode_cursor(items[-1]["ts"]) if more else None}
