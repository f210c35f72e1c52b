"""What a flush writes, worked out once for every sink: vehicle rows, one latest-state row per
vehicle (the newest reading) and history rows (readings with SoC or location, once per (vin, ts))."""

from __future__ import annotations

import json
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

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


_NUMBER = frozenset({int, float})
_FLAG = frozenset({bool})
_TEXT = frozenset({str})

# Columns taken from a snapshot's values: (column, key, the types stored). A value of another type is
# stored as NULL, as is a key the snapshot lacks; a bool is not a number here.
READING_VALUES = (
    ("soc", topics.DRIVETRAIN_SOC, _NUMBER),
    ("range_km", topics.DRIVETRAIN_RANGE, _NUMBER),
    ("latitude", topics.LOCATION_LATITUDE, _NUMBER),
    ("longitude", topics.LOCATION_LONGITUDE, _NUMBER),
    ("speed_kmh", topics.LOCATION_SPEED, _NUMBER),
    ("charging", topics.DRIVETRAIN_CHARGING, _FLAG),
)
STATE_VALUES = (*READING_VALUES, ("locked", topics.DOORS_LOCKED, _FLAG))
HISTORY_VALUES = (
    *READING_VALUES,
    ("odometer_km", topics.DRIVETRAIN_MILEAGE, _NUMBER),
    ("power_kw", topics.DRIVETRAIN_POWER, _NUMBER),
    ("running", topics.DRIVETRAIN_RUNNING, _FLAG),
    ("interior_temp_c", topics.CLIMATE_INTERIOR_TEMPERATURE, _NUMBER),
    ("exterior_temp_c", topics.CLIMATE_EXTERIOR_TEMPERATURE, _NUMBER),
)
VEHICLE_VALUES = (("brand", topics.INFO_BRAND, _TEXT), ("model", topics.INFO_MODEL, _TEXT))


def _typed(values: dict[str, TelemetryValue], spec: tuple[tuple[str, str, frozenset[type]], ...]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column, key, types in spec:
        value = values.get(key)
        row[column] = value if value.__class__ in types else None
    return row


def _number(value: TelemetryValue | None) -> float | None:
    """One value by `_NUMBER`'s rule, as `_typed` reads a column."""
    return cast("float", value) if value.__class__ in _NUMBER else None


def _payload(values: dict[str, TelemetryValue], keys: AbstractSet[str]) -> dict[str, TelemetryValue]:
    """The values of `keys` the snapshot has; times stay datetimes (`dumps` writes them in ISO 8601)."""
    return {key: values[key] for key in keys if key in values}


def plan_rows(snapshots: list[VehicleSnapshot]) -> FlushRows:
    """Snapshots may repeat a vehicle (a retried batch beside a new one)."""
    # The state row follows the car's reading time; arrival time never stands in for it, or info
    # topics that arrive before the first reading would block that reading as "older".
    seen: dict[str, VehicleSnapshot] = {}
    newest: dict[str, tuple[datetime, VehicleSnapshot]] = {}
    history: dict[tuple[str, datetime], VehicleSnapshot] = {}
    state_keys: dict[str, set[str]] = {}
    for snap in snapshots:
        vin = snap.vin
        if vin not in seen or snap.received_at >= seen[vin].received_at:
            seen[vin] = snap
        if snap.ts is None:
            continue
        keys = state_keys.get(vin)
        if keys is None:
            keys = state_keys[vin] = set()
        keys.update(snap.values if snap.unsaved is None else snap.unsaved)
        current = newest.get(vin)
        if current is None or snap.ts >= current[0] or (current[1].ts_from_arrival and not snap.ts_from_arrival):
            newest[vin] = (snap.ts, snap)
        if snap.goes_to_history:
            history[(vin, snap.ts)] = snap

    vehicles = []
    for s in seen.values():
        row = _typed(s.values, VEHICLE_VALUES)
        row["vin"], row["account"], row["last_seen"] = s.vin, s.account, s.received_at
        vehicles.append(row)
    states = []
    for ts, s in newest.values():
        row = _typed(s.values, STATE_VALUES)
        available = s.values.get(topics.AVAILABLE)
        row["vin"], row["ts"], row["received_at"], row["ts_from_arrival"] = s.vin, ts, s.received_at, s.ts_from_arrival
        row["available"] = None if available is None else available == "online"
        row["state"] = _payload(s.values, state_keys[s.vin])
        states.append(row)
    telemetry = []
    for s in history.values():
        row = _typed(s.values, HISTORY_VALUES)
        row["vin"], row["ts"], row["payload"] = s.vin, s.ts, _payload(s.values, s.changed)
        telemetry.append(row)
    capacities = {vin: _number(s.values.get(topics.DRIVETRAIN_TOTAL_BATTERY_CAPACITY)) for vin, s in seen.items()}
    return FlushRows(vehicles, states, telemetry, capacities)


def dumps(value: Any) -> str:
    """Compact JSON, by orjson (a flush writes tens of thousands of documents; json takes 5x as long);
    datetimes in ISO 8601 either way."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer past 64 bits, which orjson refuses and json writes
        return json.dumps(value, separators=(",", ":"), default=to_json)


def columns(rows: list[dict[str, Any]], names: tuple[str, ...]) -> list[list[Any]]:
    """Rows as one list per column, in `names`' order (for `unnest` of typed arrays)."""
    return [[row[name] for row in rows] for name in names]
