"""What a flush writes, worked out once for every sink: vehicle rows, one latest-state row per
vehicle (the newest reading) and history rows (readings with SoC or location, once per (vin, ts))."""

from __future__ import annotations

import json
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from common import topics
from common.values import TelemetryValue, to_json
from ingest.cache import VehicleSnapshot

TELEMETRY_COLUMNS = (
    "vin",
    "ts",
    "soc",
    "range_km",
    "latitude",
    "longitude",
    "speed_kmh",
    "charging",
    "odometer_km",
    "power_kw",
    "running",
    "interior_temp_c",
    "exterior_temp_c",
    "payload",
)
VEHICLE_COLUMNS = ("vin", "account", "brand", "model", "last_seen")
STATE_COLUMNS = (
    "vin",
    "ts",
    "received_at",
    "soc",
    "range_km",
    "latitude",
    "longitude",
    "speed_kmh",
    "locked",
    "charging",
    "available",
    "state",
    "ts_from_arrival",
)


@dataclass(frozen=True)
class FlushRows:
    vehicles: list[dict[str, Any]]
    """Rows keyed by VEHICLE_COLUMNS (`upsert_vehicles`); `last_seen` a datetime."""
    states: list[dict[str, Any]]
    """Latest-state rows keyed by STATE_COLUMNS (`upsert_vehicle_states`); times are datetimes,
    `state` the values the row may lack (the database merges them into what it has)."""
    telemetry: list[dict[str, Any]]
    """History rows keyed by TELEMETRY_COLUMNS; `ts` a datetime, `payload` the values the reading changed."""
    capacities: dict[str, float | None]
    """Each vehicle's battery capacity (kWh) as its latest snapshot reports it, for derived energy."""


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


def _payload(values: dict[str, TelemetryValue], keys: AbstractSet[str]) -> dict[str, Any]:
    return {k: to_json(values[k]) for k in keys & values.keys()}


def plan_rows(snapshots: list[VehicleSnapshot]) -> FlushRows:
    """Snapshots may repeat a vehicle (a retried batch beside a new one)."""
    # The state row follows the car's reading time; arrival time never stands in for it, or info
    # topics that arrive before the first reading would block that reading as "older".
    seen: dict[str, VehicleSnapshot] = {}
    newest: dict[str, tuple[datetime, VehicleSnapshot]] = {}
    history: dict[tuple[str, datetime], VehicleSnapshot] = {}
    state_keys: dict[str, set[str]] = {}
    for snap in snapshots:
        if snap.vin not in seen or snap.received_at >= seen[snap.vin].received_at:
            seen[snap.vin] = snap
        if snap.ts is None:
            continue
        state_keys.setdefault(snap.vin, set()).update(snap.values if snap.unsaved is None else snap.unsaved)
        current = newest.get(snap.vin)
        if current is None or snap.ts >= current[0] or (current[1].ts_from_arrival and not snap.ts_from_arrival):
            newest[snap.vin] = (snap.ts, snap)
        if snap.goes_to_history:
            history[(snap.vin, snap.ts)] = snap

    vehicles = [
        {
            "vin": s.vin,
            "account": s.account,
            "brand": _text(s.values, topics.INFO_BRAND),
            "model": _text(s.values, topics.INFO_MODEL),
            "last_seen": s.received_at,
        }
        for s in seen.values()
    ]
    states = [
        {
            "vin": s.vin,
            "ts": ts,
            "received_at": s.received_at,
            "soc": _number(s.values, topics.DRIVETRAIN_SOC),
            "range_km": _number(s.values, topics.DRIVETRAIN_RANGE),
            "latitude": _number(s.values, topics.LOCATION_LATITUDE),
            "longitude": _number(s.values, topics.LOCATION_LONGITUDE),
            "speed_kmh": _number(s.values, topics.LOCATION_SPEED),
            "locked": _flag(s.values, topics.DOORS_LOCKED),
            "charging": _flag(s.values, topics.DRIVETRAIN_CHARGING),
            "available": None if topics.AVAILABLE not in s.values else s.values[topics.AVAILABLE] == "online",
            "state": _payload(s.values, state_keys[s.vin]),
            "ts_from_arrival": s.ts_from_arrival,
        }
        for ts, s in newest.values()
    ]
    telemetry = [
        {
            "vin": s.vin,
            "ts": s.ts,
            "soc": _number(s.values, topics.DRIVETRAIN_SOC),
            "range_km": _number(s.values, topics.DRIVETRAIN_RANGE),
            "latitude": _number(s.values, topics.LOCATION_LATITUDE),
            "longitude": _number(s.values, topics.LOCATION_LONGITUDE),
            "speed_kmh": _number(s.values, topics.LOCATION_SPEED),
            "charging": _flag(s.values, topics.DRIVETRAIN_CHARGING),
            "odometer_km": _number(s.values, topics.DRIVETRAIN_MILEAGE),
            "power_kw": _number(s.values, topics.DRIVETRAIN_POWER),
            "running": _flag(s.values, topics.DRIVETRAIN_RUNNING),
            "interior_temp_c": _number(s.values, topics.CLIMATE_INTERIOR_TEMPERATURE),
            "exterior_temp_c": _number(s.values, topics.CLIMATE_EXTERIOR_TEMPERATURE),
            "payload": _payload(s.values, s.changed),
        }
        for s in history.values()
    ]
    capacities = {vin: _number(s.values, topics.DRIVETRAIN_TOTAL_BATTERY_CAPACITY) for vin, s in seen.items()}
    return FlushRows(vehicles, states, telemetry, capacities)


def dumps(value: Any) -> str:
    """Compact JSON, by orjson (a flush writes tens of thousands of documents; json takes 5x as long)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer past 64 bits, which orjson refuses and json writes
        return json.dumps(value, separators=(",", ":"))


def columns(rows: list[dict[str, Any]], names: tuple[str, ...]) -> list[list[Any]]:
    """Rows as one list per column, in `names`' order (for `unnest` of typed arrays)."""
    return [[row[name] for row in rows] for name in names]
