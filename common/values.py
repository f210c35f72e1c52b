"""The telemetry contract: what each key may carry (type, unit, plausible range, size), and the
payload encoding, as the upstream gateway writes it.

Booleans are `True`/`False`, numbers are plain text, dicts are JSON and timestamps ISO-8601 UTC.
A payload outside its key's contract is refused with the reason (the ingest dead-letters it).

Keys the upstream gateway may add in a future version are taken as "extra" values: a well-formed
name under a known category, a scalar (bool, bounded number or short text), at most
`MAX_EXTRA_KEYS` per vehicle (the ingest counts them). Anything else is refused: nothing arrives
unbounded or unchecked.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
    SCALAR = "scalar"
    """A bool, a number or a short text (extra keys: whatever parses first)."""


@dataclass(frozen=True, slots=True)
class Contract:
    """What one telemetry key may carry."""

    kind: Kind
    unit: str | None = None
    low: float | None = None
    high: float | None = None
    max_length: int = 256
    """Characters of a text value, or of a JSON payload."""
    fields: Mapping[str, Contract] | None = None
    """For a JSON object: the contract of each known field (other fields: short scalars)."""


BOOL = Contract(Kind.BOOL)
PERCENT = Contract(Kind.FLOAT, "%", 0, 100)
KM = Contract(Kind.FLOAT, "km", 0, 5_000_000)
RANGE_KM = Contract(Kind.FLOAT, "km", 0, 3_000)
KWH = Contract(Kind.FLOAT, "kWh", 0, 1_000)
LATITUDE = Contract(Kind.FLOAT, "°", -90, 90)
LONGITUDE = Contract(Kind.FLOAT, "°", -180, 180)
ELEVATION = Contract(Kind.INT, "m", -500, 9_000)
CELSIUS = Contract(Kind.INT, "°C", -127, 127)
EPOCH_SECONDS = Contract(Kind.INT, "s", 0, 2**32)
SHORT_TEXT = Contract(Kind.TEXT, max_length=64)
TEXT = Contract(Kind.TEXT)
TIMESTAMP = Contract(Kind.TIMESTAMP)
SCHEDULE = Contract(
    Kind.JSON, max_length=512, fields={"startTime": SHORT_TEXT, "endTime": SHORT_TEXT, "mode": SHORT_TEXT}
)

CONTRACT: dict[str, Contract] = {
    topics.DRIVETRAIN_SOC: PERCENT,
    topics.DRIVETRAIN_RANGE: RANGE_KM,
    topics.DRIVETRAIN_MILEAGE: KM,
    topics.DRIVETRAIN_RUNNING: BOOL,
    topics.DRIVETRAIN_CHARGING: BOOL,
    topics.DRIVETRAIN_CHARGER_CONNECTED: BOOL,
    topics.DRIVETRAIN_POWER: Contract(Kind.FLOAT, "kW", -1_000, 1_000),  # negative: charging
    topics.DRIVETRAIN_VOLTAGE: Contract(Kind.FLOAT, "V", 0, 1_500),
    topics.DRIVETRAIN_CURRENT: Contract(Kind.FLOAT, "A", -2_000, 2_500),
    topics.DRIVETRAIN_AUX_BATTERY_VOLTAGE: Contract(Kind.FLOAT, "V", 0, 32),
    topics.DRIVETRAIN_HV_BATTERY_ACTIVE: BOOL,
    topics.DRIVETRAIN_SOC_TARGET: Contract(Kind.INT, "%", 0, 100),
    topics.DRIVETRAIN_REMAINING_CHARGING_TIME: Contract(Kind.INT, "s", 0, 14 * 86_400),
    topics.DRIVETRAIN_TOTAL_BATTERY_CAPACITY: Contract(Kind.FLOAT, "kWh", 0, 300),
    topics.DRIVETRAIN_CHARGE_CURRENT_LIMIT: Contract(Kind.TEXT, max_length=16),
    topics.DRIVETRAIN_CHARGING_CABLE_LOCK: BOOL,
    topics.DRIVETRAIN_CHARGING_SCHEDULE: SCHEDULE,
    topics.DRIVETRAIN_BATTERY_HEATING: BOOL,
    topics.DRIVETRAIN_BATTERY_HEATING_SCHEDULE: SCHEDULE,
    topics.DRIVETRAIN_CURRENT_JOURNEY: Contract(
        Kind.JSON, max_length=512, fields={"id": Contract(Kind.INT, "", 0, 2**63), "distance": KM}
    ),
    topics.DRIVETRAIN_SOC_KWH: Contract(Kind.FLOAT, "kWh", 0, 300),
    topics.DRIVETRAIN_CHARGING_TYPE: SHORT_TEXT,
    "drivetrain/fossilFuel/range": RANGE_KM,
    "drivetrain/fossilFuel/percentage": PERCENT,
    "drivetrain/hybrid_electrical_range": RANGE_KM,
    "drivetrain/chargingStopReason": SHORT_TEXT,
    "drivetrain/batteryHeatingStopReason": SHORT_TEXT,
    "drivetrain/mileageOfTheDay": KM,
    "drivetrain/mileageSinceLastCharge": KM,
    "drivetrain/charging/lastStart": EPOCH_SECONDS,
    "drivetrain/charging/lastEnd": EPOCH_SECONDS,
    "drivetrain/lastChargeEndingPower": KWH,
    "drivetrain/powerUsageOfDay": KWH,
    "drivetrain/powerUsageSinceLastCharge": KWH,
    topics.BMS_CHARGE_STATUS: SHORT_TEXT,
    topics.LOCATION_LATITUDE: LATITUDE,
    topics.LOCATION_LONGITUDE: LONGITUDE,
    topics.LOCATION_ELEVATION: ELEVATION,
    topics.LOCATION_HEADING: Contract(Kind.INT, "°", 0, 360),
    topics.LOCATION_SPEED: Contract(Kind.FLOAT, "km/h", 0, 400),
    topics.LOCATION_POSITION: Contract(
        Kind.JSON, max_length=512, fields={"latitude": LATITUDE, "longitude": LONGITUDE, "altitude": ELEVATION}
    ),
    topics.CLIMATE_INTERIOR_TEMPERATURE: CELSIUS,
    topics.CLIMATE_EXTERIOR_TEMPERATURE: CELSIUS,
    topics.CLIMATE_REMOTE_CLIMATE_STATE: SHORT_TEXT,
    topics.CLIMATE_REMOTE_TEMPERATURE: Contract(Kind.INT, "°C", 0, 50),
    topics.CLIMATE_BACK_WINDOW_HEAT: SHORT_TEXT,
    "climate/frontWindowDefrosterHeating": SHORT_TEXT,
    topics.CLIMATE_HEATED_SEAT_LEFT: Contract(Kind.INT, "", 0, 3),
    topics.CLIMATE_HEATED_SEAT_RIGHT: Contract(Kind.INT, "", 0, 3),
    topics.DOORS_LOCKED: BOOL,
    **dict.fromkeys(topics.DOORS, BOOL),
    **dict.fromkeys(topics.WINDOWS, BOOL),
    **dict.fromkeys(topics.LIGHTS, BOOL),
    **dict.fromkeys(topics.TYRES, Contract(Kind.FLOAT, "bar", 0, 10)),
    **dict.fromkeys(topics.INFO, TEXT),
    topics.REFRESH_MODE: SHORT_TEXT,
    topics.REFRESH_POLLING_PHASE: SHORT_TEXT,
    topics.REFRESH_LAST_ACTIVITY: TIMESTAMP,
    topics.REFRESH_LAST_VEHICLE_STATE: TIMESTAMP,
    topics.REFRESH_LAST_ERROR: TIMESTAMP,
    "refresh/lastChargeState": TIMESTAMP,
    topics.AVAILABLE: SHORT_TEXT,
}

PREFIX_CONTRACTS: dict[str, Contract] = {
    f"{topics.INFO_CONFIGURATION}/": TEXT,
    "info/lastMessage/": Contract(Kind.TEXT, max_length=4_096),
    f"{topics.REFRESH_PERIOD}/": Contract(Kind.INT, "s", 0, 366 * 86_400),
    "obc/": Contract(Kind.SCALAR, low=-1e6, high=1e6),
    "ccu/": Contract(Kind.SCALAR, low=-1e6, high=1e6),
}
"""Families of keys (upstream names each item of a car's configuration and last message)."""

EXTRA = Contract(Kind.SCALAR, low=-1e9, high=1e9)
"""A key outside the contract, taken as a bounded scalar (see the module's docstring)."""
MAX_EXTRA_KEYS = 32
_EXTRA_KEY = re.compile(
    rf"(?:{'|'.join((*topics.INGESTED_CATEGORIES, 'info'))})(?:/[A-Za-z][A-Za-z0-9_]{{0,47}}){{1,2}}", re.ASCII
)

_VIN = re.compile(r"[A-HJ-NPR-Z0-9]{17}", re.ASCII)
EARLIEST_READING = datetime(2000, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(days=1)
"""A timestamp later than now by more than this is no reading the car made (a car's clock may run ahead a little)."""


def is_vin(text: str) -> bool:
    """17 characters of the VIN alphabet (digits and capitals without I, O and Q)."""
    return _VIN.fullmatch(text) is not None


def is_extra(key: str) -> bool:
    """A key outside the contract that is taken as a bounded extra value."""
    return contract_for(key) is EXTRA


def contract_for(key: str) -> Contract | None:
    """The key's contract, the extra contract for a well-formed future key, or None: refused."""
    if (contract := CONTRACT.get(key)) is not None:
        return contract
    for prefix, family in PREFIX_CONTRACTS.items():
        if key.startswith(prefix) and len(key) <= len(prefix) + 64 and "/" not in key[len(prefix) :]:
            return family
    return EXTRA if _EXTRA_KEY.fullmatch(key) else None


def encode(value: TelemetryValue) -> str:
    """The payload text for a value, exactly as the upstream gateway publishes it."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2)
    return str(value)


def decode(key: str, payload: bytes | str) -> TelemetryValue:
    """Parse a payload for a key; raises ValueError saying what was wrong for one outside the contract."""
    contract = contract_for(key)
    if contract is None:
        raise ValueError(f"{key[:120]!r}: not a key of the telemetry contract")
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    limit = contract.max_length if contract.kind in (Kind.TEXT, Kind.JSON) else 64
    if len(text) > limit:
        raise ValueError(f"{key}: {len(text)} characters, more than the {limit} allowed")
    if _UNSTORABLE.search(text) is not None:  # JSON escapes are checked once decoded, below
        raise ValueError(f"{key}: contains U+0000 or an unpaired surrogate, which PostgreSQL cannot store")
    return _decode(key, contract, text)


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_INTEGER = re.compile(r"-?[0-9]{1,20}", re.ASCII)
_DECIMAL = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]{1,20})?(?:[eE][-+]?[0-9]{1,3})?", re.ASCII)
"""Plain ASCII numbers as upstream writes them: no Unicode digits, spaces, underscores, inf or nan."""
MAX_JSON_FIELDS = 16


def _decode(key: str, contract: Contract, text: str) -> TelemetryValue:
    match contract.kind:
        case Kind.BOOL:
            if text not in ("True", "False"):
                raise ValueError(f"{key}: expected True or False, got {text[:40]!r}")
            return text == "True"
        case Kind.INT:
            if _INTEGER.fullmatch(text) is None:
                raise ValueError(f"{key}: expected an integer, got {text[:40]!r}")
            return _in_range(key, contract, int(text))
        case Kind.FLOAT:
            if _DECIMAL.fullmatch(text) is None:
                raise ValueError(f"{key}: expected a number, got {text[:40]!r}")
            return _in_range(key, contract, float(text))
        case Kind.TEXT:
            return text
        case Kind.JSON:
            return _decode_object(key, contract, text)
        case Kind.TIMESTAMP:
            return _decode_timestamp(key, text)
        case Kind.SCALAR:
            return _decode_scalar(key, contract, text)


def _in_range[N: (int, float)](key: str, contract: Contract, number: N) -> N:
    if not math.isfinite(number):
        raise ValueError(f"{key}: expected a finite number, got {number}")
    low = -math.inf if contract.low is None else contract.low
    high = math.inf if contract.high is None else contract.high
    if not low <= number <= high:
        unit = f" {contract.unit}" if contract.unit else ""
        raise ValueError(f"{key}: {number:g}{unit} is outside the plausible range {low:g}..{high:g}{unit}")
    return number


def _decode_scalar(key: str, contract: Contract, text: str) -> bool | int | float | str:
    if text in ("True", "False"):
        return text == "True"
    if _INTEGER.fullmatch(text):
        return _in_range(key, contract, int(text))
    if _DECIMAL.fullmatch(text):
        return _in_range(key, contract, float(text))
    if text[:1] in ("{", "["):
        raise ValueError(f"{key}: a key outside the contract may carry a bool, a number or a text, not JSON")
    return text


def _decode_timestamp(key: str, text: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{key}: expected an ISO-8601 timestamp, got {text[:40]!r}") from None
    if stamp.tzinfo is None:
        raise ValueError(f"{key}: timestamp {text[:40]!r} has no time zone")
    latest = datetime.now(UTC) + CLOCK_SKEW
    if not EARLIEST_READING <= stamp <= latest:
        raise ValueError(f"{key}: {text[:40]!r} is outside {EARLIEST_READING.date()}..{latest.date()}")
    return stamp


def _decode_object(key: str, contract: Contract, text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ValueError(f"{key}: expected JSON, got {text[:40]!r}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{key}: expected a JSON object, got {type(parsed).__name__}")
    if len(parsed) > MAX_JSON_FIELDS:
        raise ValueError(f"{key}: {len(parsed)} fields, more than the {MAX_JSON_FIELDS} allowed")
    fields = contract.fields or {}
    for name, value in parsed.items():
        where = f"{key}.{name[:40]}"
        if len(name) > 64:
            raise ValueError(f"{key}: field name {name[:40]!r}... is longer than 64 characters")
        if isinstance(value, dict | list):
            raise ValueError(f"{where}: nested values are outside the contract")
        field = fields.get(name)
        if isinstance(value, str):
            limit = field.max_length if field is not None and field.kind is Kind.TEXT else 256
            if len(value) > limit:
                raise ValueError(f"{where}: {len(value)} characters, more than the {limit} allowed")
        if _UNSTORABLE.search(name) or (isinstance(value, str) and _UNSTORABLE.search(value)):
            raise ValueError(f"{where}: contains U+0000 or an unpaired surrogate, which PostgreSQL cannot store")
        if isinstance(value, int | float) and not isinstance(value, bool):
            _in_range(where, field if field is not None and field.kind in (Kind.INT, Kind.FLOAT) else EXTRA, value)
    return parsed


def to_json(value: TelemetryValue) -> Any:
    """A JSON-serialisable form of a decoded value."""
    return value.isoformat() if isinstance(value, datetime) else value
