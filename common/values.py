"""Payload encoding of telemetry values, as the upstream gateway writes them.

Booleans are `True`/`False`, numbers are plain text, dicts are JSON and timestamps ISO-8601 UTC.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from common import topics

type TelemetryValue = bool | int | float | str | dict[str, Any] | list[Any] | datetime


class Kind(Enum):
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    TEXT = "text"
    JSON = "json"
    TIMESTAMP = "timestamp"


KEY_KINDS: dict[str, Kind] = {
    topics.DRIVETRAIN_SOC: Kind.FLOAT,
    topics.DRIVETRAIN_RANGE: Kind.FLOAT,
    topics.DRIVETRAIN_MILEAGE: Kind.FLOAT,
    topics.DRIVETRAIN_RUNNING: Kind.BOOL,
    topics.DRIVETRAIN_CHARGING: Kind.BOOL,
    topics.DRIVETRAIN_CHARGER_CONNECTED: Kind.BOOL,
    topics.DRIVETRAIN_POWER: Kind.FLOAT,
    topics.DRIVETRAIN_VOLTAGE: Kind.FLOAT,
    topics.DRIVETRAIN_CURRENT: Kind.FLOAT,
    topics.DRIVETRAIN_AUX_BATTERY_VOLTAGE: Kind.FLOAT,
    topics.DRIVETRAIN_HV_BATTERY_ACTIVE: Kind.BOOL,
    topics.DRIVETRAIN_SOC_TARGET: Kind.INT,
    topics.DRIVETRAIN_REMAINING_CHARGING_TIME: Kind.INT,
    topics.DRIVETRAIN_TOTAL_BATTERY_CAPACITY: Kind.FLOAT,
    topics.DRIVETRAIN_CHARGE_CURRENT_LIMIT: Kind.TEXT,
    topics.DRIVETRAIN_CHARGING_CABLE_LOCK: Kind.BOOL,
    topics.DRIVETRAIN_CHARGING_SCHEDULE: Kind.JSON,
    topics.DRIVETRAIN_BATTERY_HEATING: Kind.BOOL,
    topics.DRIVETRAIN_BATTERY_HEATING_SCHEDULE: Kind.JSON,
    topics.DRIVETRAIN_CURRENT_JOURNEY: Kind.JSON,
    topics.DRIVETRAIN_SOC_KWH: Kind.FLOAT,
    topics.LOCATION_LATITUDE: Kind.FLOAT,
    topics.LOCATION_LONGITUDE: Kind.FLOAT,
    topics.LOCATION_ELEVATION: Kind.INT,
    topics.LOCATION_HEADING: Kind.INT,
    topics.LOCATION_SPEED: Kind.FLOAT,
    topics.LOCATION_POSITION: Kind.JSON,
    topics.CLIMATE_INTERIOR_TEMPERATURE: Kind.INT,
    topics.CLIMATE_EXTERIOR_TEMPERATURE: Kind.INT,
    topics.CLIMATE_REMOTE_CLIMATE_STATE: Kind.TEXT,
    topics.CLIMATE_REMOTE_TEMPERATURE: Kind.INT,
    topics.CLIMATE_BACK_WINDOW_HEAT: Kind.TEXT,
    topics.CLIMATE_HEATED_SEAT_LEFT: Kind.INT,
    topics.CLIMATE_HEATED_SEAT_RIGHT: Kind.INT,
    topics.DOORS_LOCKED: Kind.BOOL,
    **dict.fromkeys(topics.DOORS, Kind.BOOL),
    **dict.fromkeys(topics.WINDOWS, Kind.BOOL),
    **dict.fromkeys(topics.LIGHTS, Kind.BOOL),
    **dict.fromkeys(topics.TYRES, Kind.FLOAT),
    **dict.fromkeys(topics.INFO, Kind.TEXT),
    topics.REFRESH_MODE: Kind.TEXT,
    topics.REFRESH_LAST_ACTIVITY: Kind.TIMESTAMP,
    topics.REFRESH_LAST_VEHICLE_STATE: Kind.TIMESTAMP,
    topics.REFRESH_LAST_ERROR: Kind.TIMESTAMP,
    topics.AVAILABLE: Kind.TEXT,
}


def encode(value: TelemetryValue) -> str:
    """The payload text for a value, exactly as the upstream gateway publishes it."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2)
    return str(value)


def decode(key: str, payload: bytes | str) -> TelemetryValue:
    """Parse a payload for a key; raises ValueError saying what was wrong for a malformed one."""
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    value = _decode(key, text)
    if not _storable(value):
        raise ValueError(f"{key}: contains U+0000 or an unpaired surrogate, which PostgreSQL cannot store")
    return value


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: Any) -> bool:
    """PostgreSQL text and jsonb take neither NUL nor lone surrogates (JSON escapes can carry both)."""
    match value:
        case str():
            return _UNSTORABLE.search(value) is None
        case dict():
            return all(_storable(k) and _storable(v) for k, v in value.items())
        case list():
            return all(_storable(v) for v in value)
        case _:
            return True


def _decode(key: str, text: str) -> TelemetryValue:
    kind = KEY_KINDS.get(key)
    if kind is None:
        return _decode_unknown(text)
    match kind:
        case Kind.BOOL:
            if text not in ("True", "False"):
                raise ValueError(f"{key}: expected True or False, got {text[:40]!r}")
            return text == "True"
        case Kind.INT:
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"{key}: expected an integer, got {text[:40]!r}") from None
        case Kind.FLOAT:
            return _decode_float(key, text)
        case Kind.JSON:
            try:
                parsed: dict[str, Any] | list[Any] = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(f"{key}: expected JSON, got {text[:40]!r}") from None
            return parsed
        case Kind.TIMESTAMP:
            try:
                stamp = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{key}: expected an ISO-8601 timestamp, got {text[:40]!r}") from None
            if stamp.tzinfo is None:
                raise ValueError(f"{key}: timestamp {text[:40]!r} has no time zone")
            return stamp
        case Kind.TEXT:
            return text


def _decode_float(key: str, text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{key}: expected a number, got {text[:40]!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{key}: expected a finite number, got {text[:40]!r}")
    return number


def _decode_unknown(text: str) -> TelemetryValue:
    if text in ("True", "False"):
        return text == "True"
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return int(number) if number.is_integer() and "." not in text else number
    if text[:1] in ("{", "["):
        try:
            parsed: dict[str, Any] | list[Any] = json.loads(text)
        except json.JSONDecodeError:
            return text
        return parsed
    return text


def to_json(value: TelemetryValue) -> Any:
    """A JSON-serialisable form of a decoded value."""
    return value.isoformat() if isinstance(value, datetime) else value
