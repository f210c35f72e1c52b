"""Writes cache snapshots to PostgreSQL: vehicles, latest state (moved only by a newer reading)
and history (only readings with SoC or location; a replay is a no-op)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common import topics
from common.database import Connection
from common.values import TelemetryValue, to_json
from ingest.cache import VehicleSnapshot

UPSERT_VEHICLES = """
INSERT INTO vehicles AS v (vin, account, brand, model, last_seen)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
ON CONFLICT (vin) DO UPDATE SET
    account = EXCLUDED.account,
    brand = COALESCE(EXCLUDED.brand, v.brand),
    model = COALESCE(EXCLUDED.model, v.model),
    last_seen = GREATEST(v.last_seen, EXCLUDED.last_seen)
"""

UPSERT_STATE = """
INSERT INTO vehicle_state AS s
    (vin, ts, received_at, soc, range_km, latitude, longitude, speed_kmh, locked, charging, available, state,
     ts_from_arrival)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::float8[], $5::float8[],
                     $6::float8[], $7::float8[], $8::float8[], $9::bool[], $10::bool[], $11::bool[], $12::jsonb[],
                     $13::bool[])
ON CONFLICT (vin) DO UPDATE SET
    ts = EXCLUDED.ts,
    ts_from_arrival = EXCLUDED.ts_from_arrival,
    received_at = EXCLUDED.received_at,
    soc = COALESCE(EXCLUDED.soc, s.soc),
    range_km = COALESCE(EXCLUDED.range_km, s.range_km),
    latitude = COALESCE(EXCLUDED.latitude, s.latitude),
    longitude = COALESCE(EXCLUDED.longitude, s.longitude),
    speed_kmh = COALESCE(EXCLUDED.speed_kmh, s.speed_kmh),
    locked = COALESCE(EXCLUDED.locked, s.locked),
    charging = COALESCE(EXCLUDED.charging, s.charging),
    available = COALESCE(EXCLUDED.available, s.available),
    state = s.state || EXCLUDED.state
WHERE s.ts <= EXCLUDED.ts OR (s.ts_from_arrival AND NOT EXCLUDED.ts_from_arrival)
"""

INSERT_TELEMETRY = """
INSERT INTO vehicle_telemetry (vin, ts, soc, range_km, latitude, longitude, speed_kmh, charging, payload)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::float8[], $4::float8[], $5::float8[], $6::float8[],
                     $7::float8[], $8::bool[], $9::jsonb[])
ON CONFLICT (vin, ts) DO NOTHING
"""


@dataclass(frozen=True)
class FlushResult:
    vehicles: int
    state_rows: int
    telemetry_rows: int


def _number(values: dict[str, TelemetryValue], key: str) -> float | None:
    value = values.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _flag(values: dict[str, TelemetryValue], key: str) -> bool | None:
    value = values.get(key)
    return value if isinstance(value, bool) else None


def _text(values: dict[str, TelemetryValue], key: str) -> str | None:
    value = values.get(key)
    return value if isinstance(value, str) else None


def _payload(values: dict[str, TelemetryValue]) -> str:
    return json.dumps({k: to_json(v) for k, v in values.items()})


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


async def write_snapshots(conn: Connection, snapshots: list[VehicleSnapshot]) -> FlushResult:
    """Write in one transaction. Snapshots may repeat a vehicle (a retried batch beside a new one)."""
    if not snapshots:
        return FlushResult(0, 0, 0)
    # The state row follows the car's reading time; arrival time never stands in for it, or info
    # topics that arrive before the first reading would block that reading as "older".
    seen: dict[str, VehicleSnapshot] = {}
    newest: dict[str, tuple[datetime, VehicleSnapshot]] = {}
    history: dict[tuple[str, datetime], VehicleSnapshot] = {}
    for snap in snapshots:
        if snap.vin not in seen or snap.received_at >= seen[snap.vin].received_at:
            seen[snap.vin] = snap
        if snap.ts is None:
            continue
        current = newest.get(snap.vin)
        if current is None or snap.ts >= current[0] or (current[1].ts_from_arrival and not snap.ts_from_arrival):
            newest[snap.vin] = (snap.ts, snap)
        if snap.goes_to_history:
            history[(snap.vin, snap.ts)] = snap

    vehicle_rows = [
        (s.vin, s.account, _text(s.values, topics.INFO_BRAND), _text(s.values, topics.INFO_MODEL), s.received_at)
        for s in seen.values()
    ]
    state_rows = [
        (
            s.vin,
            ts,
            s.received_at,
            _number(s.values, topics.DRIVETRAIN_SOC),
            _number(s.values, topics.DRIVETRAIN_RANGE),
            _number(s.values, topics.LOCATION_LATITUDE),
            _number(s.values, topics.LOCATION_LONGITUDE),
            _number(s.values, topics.LOCATION_SPEED),
            _flag(s.values, topics.DOORS_LOCKED),
            _flag(s.values, topics.DRIVETRAIN_CHARGING),
            None if topics.AVAILABLE not in s.values else s.values[topics.AVAILABLE] == "online",
            _payload(s.values),
            s.ts_from_arrival,
        )
        for ts, s in newest.values()
    ]
    telemetry_rows = [
        (
            s.vin,
            s.ts,
            _number(s.values, topics.DRIVETRAIN_SOC),
            _number(s.values, topics.DRIVETRAIN_RANGE),
            _number(s.values, topics.LOCATION_LATITUDE),
            _number(s.values, topics.LOCATION_LONGITUDE),
            _number(s.values, topics.LOCATION_SPEED),
            _flag(s.values, topics.DRIVETRAIN_CHARGING),
            _payload(s.values),
        )
        for s in history.values()
    ]
    async with conn.transaction():
        await conn.execute(UPSERT_VEHICLES, *_columns(vehicle_rows))
        state_status = await conn.execute(UPSERT_STATE, *_columns(state_rows)) if state_rows else "INSERT 0 0"
        telemetry_status = "INSERT 0 0"
        if telemetry_rows:
            telemetry_status = await conn.execute(INSERT_TELEMETRY, *_columns(telemetry_rows))
    return FlushResult(len(seen), _row_count(state_status), _row_count(telemetry_status))


def _row_count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])
