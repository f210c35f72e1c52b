"""Telemetry history: a time range, a limit and keyset pagination (newest first) with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from command_api.errors import ApiError
from command_api.vehicles import Window
from common.database import Connection

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

QUERY = """
SELECT ts, soc, range_km, latitude, longitude, speed_kmh, charging, odometer_km, power_kw, running, interior_temp_c,
       exterior_temp_c, payload
FROM vehicle_telemetry
WHERE vin = $1 AND ($2::timestamptz IS NULL OR ts >= $2) AND ($3::timestamptz IS NULL OR ts < $3)
  AND ($4::timestamptz IS NULL OR ts < $4)
ORDER BY ts DESC
LIMIT $5
"""


def timestamp_param(query: web.BaseRequest, name: str) -> datetime | None:
    text = query.query.get(name)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"`{name}` must be an ISO-8601 time, got {text[:40]!r}") from None
    if value.tzinfo is None:
        raise ApiError(400, "invalid_parameter", f"`{name}` needs a time zone (e.g. `Z` or `+00:00`)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset: no such instant in UTC
        raise ApiError(400, "invalid_parameter", f"`{name}` is outside the years 1 to 9999 in UTC") from None


def positive_int(text: str, maximum: int) -> int | None:
    """`text` as an integer from 1 to `maximum`; None for anything else (only ASCII digits count:
    `str.isdigit` accepts `²` and `١٠`, which `int` refuses or reads)."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if 1 <= value <= maximum else None


def limit_param(request: web.BaseRequest, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """`?limit=`: 1 to `maximum`, `default` when absent."""
    text = request.query.get("limit", str(default))
    limit = positive_int(text, maximum)
    if limit is None:
        raise ApiError(400, "invalid_parameter", f"`limit` must be an integer from 1 to {maximum}, got {text[:20]!r}")
    return limit


def encode_cursor(ts: datetime) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": ts.isoformat()}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> datetime:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = datetime.fromisoformat(json.loads(raw)["before"])
        if value.tzinfo is None:
            raise ValueError("no time zone")
        return value.astimezone(UTC)
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError, OverflowError, RecursionError):
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API returned") from None


@dataclass(frozen=True)
class PageWindow:
    """`from` (inclusive), `to` (exclusive), the cursor's position and the page size of a history list."""

    since: datetime | None
    until: datetime | None
    before: datetime | None
    limit: int

    @classmethod
    def of(cls, request: web.BaseRequest) -> PageWindow:
        since, until = timestamp_param(request, "from"), timestamp_param(request, "to")
        if since and until and since >= until:
            raise ApiError(400, "invalid_parameter", "`from` must be earlier than `to`")
        cursor = request.query.get("cursor")
        return cls(since, until, decode_cursor(cursor) if cursor else None, limit_param(request))

    def within(self, access: Window) -> PageWindow:
        """The window inside what the caller may see of the car (vehicles.authorize's window)."""
        since = max((t for t in (self.since, access.since) if t is not None), default=None)
        until = min((t for t in (self.until, access.until) if t is not None), default=None)
        return PageWindow(since, until, self.before, self.limit)

    def next_cursor(self, rows: list[Any], ts_of: str = "ts") -> str | None:
        """The cursor of the page after `rows` (fetched with `limit + 1`), or None on the last page."""
        return encode_cursor(rows[self.limit - 1][ts_of]) if len(rows) > self.limit else None


async def page(conn: Connection, vin: str, request: web.BaseRequest, access: Window) -> dict[str, Any]:
    window = PageWindow.of(request).within(access)
    limit = window.limit
    rows = await conn.fetch(QUERY, vin, window.since, window.until, window.before, limit + 1)
    items = [
        {
            "ts": r["ts"],
            "soc": r["soc"],
            "range_km": r["range_km"],
            "latitude": r["latitude"],
            "longitude": r["longitude"],
            "speed_kmh": r["speed_kmh"],
            "charging": r["charging"],
            "odometer_km": r["odometer_km"],
            "power_kw": r["power_kw"],
            "running": r["running"],
            "interior_temp_c": r["interior_temp_c"],
            "exterior_temp_c": r["exterior_temp_c"],
            "values": json.loads(r["payload"]),
        }
        for r in rows[:limit]
    ]
    return {"vin": vin, "items": items, "next_cursor": window.next_cursor(rows)}
