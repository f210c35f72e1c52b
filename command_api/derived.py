"""Drives, charging sessions, parked periods and statistics: read from the tables the ingest derives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from aiohttp import web

from command_api.errors import ApiError
from command_api.history import PageWindow, positive_int, timestamp_param
from command_api.vehicles import Window
from common.database import Connection

PERIOD_TABLES = {"drives": "drives", "charges": "charges", "parks": "parks"}
BUCKETS = ("day", "week", "month")
MAX_STATS_DAYS = {"day": 400, "week": 5 * 366, "month": 20 * 366}
MAX_PATH_POINTS = 5000
POSTGRES_BIGINT_MAX = 2**63 - 1


async def periods_page(
    conn: Connection, table: str, vin: str, request: web.BaseRequest, access: Window
) -> dict[str, Any]:
    """Newest first; `from` / `to` bound the start time; `cursor` continues a listing."""
    window = PageWindow.of(request).within(access)
    rows = await conn.fetch(
        f"SELECT * FROM {PERIOD_TABLES[table]} "  # noqa: S608 - the table name is one of three constants
        "WHERE vin = $1 AND ($2::timestamptz IS NULL OR start_ts >= $2) AND ($3::timestamptz IS NULL OR start_ts < $3)"
        " AND ($4::timestamptz IS NULL OR start_ts < $4) ORDER BY start_ts DESC LIMIT $5",
        vin,
        window.since,
        window.until,
        window.before,
        window.limit + 1,
    )
    return {
        "vin": vin,
        "items": [dict(r) for r in rows[: window.limit]],
        "next_cursor": window.next_cursor(rows, "start_ts"),
    }


def period_id(request: web.Request) -> int:
    text = request.match_info["id"]
    period = positive_int(text, POSTGRES_BIGINT_MAX)
    if period is None:
        raise ApiError(400, "invalid_parameter", f"the id must be a positive integer, got {text[:30]!r}")
    return period


async def get_period(conn: Connection, table: str, period: int) -> dict[str, Any]:
    row = await conn.fetchrow(f"SELECT * FROM {PERIOD_TABLES[table]} WHERE id = $1", period)  # noqa: S608
    if row is None:
        raise ApiError(404, f"unknown_{table[:-1]}", f"no {table[:-1]} with id {period}")
    return dict(row)


PATH = (
    "SELECT ts, latitude, longitude, speed_kmh, soc FROM vehicle_telemetry WHERE vin = $1 AND ts BETWEEN $2 AND $3"
    " AND latitude IS NOT NULL AND longitude IS NOT NULL ORDER BY ts"
)
CURVE = (
    "SELECT ts, soc, abs(power_kw) AS power_kw FROM vehicle_telemetry WHERE vin = $1 AND ts BETWEEN $2 AND $3"
    " ORDER BY ts"
)


async def _readings_of(conn: Connection, query: str, period: dict[str, Any]) -> list[dict[str, Any]]:
    """The period's readings in time order, thinned evenly past 5,000 (the last one always kept)."""
    rows = await conn.fetch(query, period["vin"], period["start_ts"], period["end_ts"])
    step = max(1, -(-len(rows) // MAX_PATH_POINTS))
    kept = rows[::step]
    if rows and kept[-1] is not rows[-1]:
        kept.append(rows[-1])
    return [dict(r) for r in kept]


async def drive_path(conn: Connection, drive: dict[str, Any]) -> list[dict[str, Any]]:
    """Where the drive went: its readings with a position."""
    return await _readings_of(conn, PATH, drive)


async def charge_curve(conn: Connection, charge: dict[str, Any]) -> list[dict[str, Any]]:
    """SoC and power (positive) through the charge."""
    return await _readings_of(conn, CURVE, charge)


STATS = """
WITH buckets AS (
    SELECT generate_series(date_trunc($4, $2 AT TIME ZONE $5),
                           ($3 AT TIME ZONE $5) - interval '1 microsecond', ('1 ' || $4)::interval) AS local
),
d AS (
    SELECT date_trunc($4, start_ts AT TIME ZONE $5) AS local, count(*) AS drives, sum(distance_km) AS distance_km,
           sum(energy_used_kwh) AS energy_used_kwh,
           sum(distance_km) FILTER (WHERE energy_used_kwh IS NOT NULL) AS distance_with_energy_km
    FROM drives WHERE vin = $1 AND start_ts >= $2 AND start_ts < $3 AND NOT in_progress GROUP BY 1
),
c AS (
    SELECT date_trunc($4, start_ts AT TIME ZONE $5) AS local, count(*) AS charges,
           sum(energy_added_kwh) AS energy_added_kwh, sum(cost) AS cost
    FROM charges WHERE vin = $1 AND start_ts >= $2 AND start_ts < $3 AND NOT in_progress GROUP BY 1
),
p AS (
    SELECT date_trunc($4, start_ts AT TIME ZONE $5) AS local, sum(soc_lost) AS soc_lost,
           sum(duration_s) / 3600 AS parked_hours
    FROM parks WHERE vin = $1 AND start_ts >= $2 AND start_ts < $3 AND NOT in_progress
      AND drain_per_hour IS NOT NULL GROUP BY 1
)
SELECT b.local, d.drives, d.distance_km, d.energy_used_kwh, d.distance_with_energy_km, c.charges,
       c.energy_added_kwh, c.cost, p.soc_lost, p.parked_hours
FROM buckets b LEFT JOIN d USING (local) LEFT JOIN c USING (local) LEFT JOIN p USING (local)
ORDER BY b.local
"""


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _efficiency(energy_kwh: float | None, distance_km: float | None) -> float | None:
    return round(energy_kwh * 1000 / distance_km, 1) if energy_kwh is not None and distance_km else None


def _drain(soc_lost: float | None, hours: float | None) -> float | None:
    return round(soc_lost / hours, 3) if soc_lost is not None and hours else None


async def stats(conn: Connection, vin: str, request: web.BaseRequest, access: Window) -> dict[str, Any]:
    bucket = request.query.get("bucket", "day")
    if bucket not in BUCKETS:
        raise ApiError(400, "invalid_parameter", f"`bucket` must be one of {', '.join(BUCKETS)}, got {bucket[:20]!r}")
    zone_name = request.query.get("tz", "UTC")
    if zone_name != "UTC" and zone_name not in _time_zones():
        raise ApiError(400, "invalid_parameter", f"`tz` must be an IANA time zone, got {zone_name[:40]!r}")
    zone: tzinfo = UTC if zone_name == "UTC" else ZoneInfo(zone_name)  # UTC needs no tzdata installed
    until = timestamp_param(request, "to") or datetime.now(UTC)
    since = timestamp_param(request, "from") or until - timedelta(days=30)
    if since >= until:
        raise ApiError(400, "invalid_parameter", "`from` must be earlier than `to`")
    if until - since > timedelta(days=MAX_STATS_DAYS[bucket]):
        raise ApiError(
            400, "invalid_parameter", f"at most {MAX_STATS_DAYS[bucket]} days with `bucket={bucket}`; use a coarser one"
        )
    allowed = PageWindow(since, until, None, 0).within(access)
    rows = await conn.fetch(STATS, vin, allowed.since or since, allowed.until or until, bucket, zone_name)
    items = []
    totals: dict[str, float] = dict.fromkeys(
        ("drives", "distance_km", "energy_used_kwh", "distance_with_energy_km", "charges", "energy_added_kwh", "cost"),
        0.0,
    )
    soc_lost = parked_hours = 0.0
    for r in rows:
        for key in totals:
            totals[key] += r[key] or 0
        soc_lost += r["soc_lost"] or 0
        parked_hours += r["parked_hours"] or 0
        items.append(
            {
                "start": r["local"].replace(tzinfo=zone),
                "drives": r["drives"] or 0,
                "distance_km": _round(r["distance_km"]) or 0.0,
                "energy_used_kwh": _round(r["energy_used_kwh"]),
                "efficiency_wh_per_km": _efficiency(r["energy_used_kwh"], r["distance_with_energy_km"]),
                "charges": r["charges"] or 0,
                "energy_added_kwh": _round(r["energy_added_kwh"]),
                "cost": _round(r["cost"], 2),
                "drain_per_hour": _drain(r["soc_lost"], r["parked_hours"]),
            }
        )
    return {
        "vin": vin,
        "bucket": bucket,
        "tz": zone_name,
        "from": since,
        "to": until,
        "items": items,
        "totals": {
            "drives": int(totals["drives"]),
            "distance_km": round(totals["distance_km"], 3),
            "energy_used_kwh": round(totals["energy_used_kwh"], 3),
            "efficiency_wh_per_km": _efficiency(totals["energy_used_kwh"], totals["distance_with_energy_km"]),
            "charges": int(totals["charges"]),
            "energy_added_kwh": round(totals["energy_added_kwh"], 3),
            "cost": round(totals["cost"], 2),
            "drain_per_hour": _drain(soc_lost, parked_hours),
        },
    }
