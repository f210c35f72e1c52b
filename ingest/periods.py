"""Drives, charging sessions and parked periods, derived from a vehicle's readings in time order.

A vehicle's timeline is cut into contiguous periods that share their boundary readings:

- a **drive** starts at the last reading before the car moved (or at the first moving reading after
  a gap longer than `drive_max_gap`) and ends at the first reading of a stop that lasted at least
  `drive_stop_grace` (a traffic light or a queue stays inside the drive);
- a **charge** runs from the first reading with `charging` true to the first reading without;
- a **park** is whatever lies between them; its SoC loss per hour is the vampire drain.

The engine is fed one vehicle's readings in time order and keeps everything it needs to go on in
`DerivationState`, a JSON document stored beside the periods: a restart resumes an open drive or
charge instead of splitting it. Rebuilding from history runs the same engine from a fresh state, so
live derivation and a backfill give the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import Field

from common.settings import EnvSettings

EARTH_RADIUS_KM = 6371.0088


class PeriodSettings(EnvSettings):
    """The thresholds that open and close periods (docs/derived-history.md explains each)."""

    enabled: bool = Field(True, alias="DERIVE_PERIODS", description="derive drives, charges and parks")
    drive_min_speed_kmh: float = Field(
        3.0, alias="DRIVE_MIN_SPEED_KMH", ge=0, le=50, description="moving, when the car does not say it runs"
    )
    drive_stop_grace: float = Field(
        180.0, alias="DRIVE_STOP_GRACE", ge=0, le=3600, description="a stop shorter than this stays in the drive (s)"
    )
    drive_max_gap: float = Field(
        900.0, alias="DRIVE_MAX_GAP", gt=0, le=86400, description="a drive silent for longer ends at its last reading"
    )
    charge_max_gap: float = Field(
        3600.0,
        alias="CHARGE_MAX_GAP",
        gt=0,
        le=86400,
        description="a charge silent for longer ends at its last reading",
    )
    dc_min_power_kw: float = Field(
        22.0, alias="CHARGE_DC_MIN_POWER_KW", gt=0, description="a peak above this means a DC charger"
    )
    price_per_kwh: float | None = Field(
        None, alias="CHARGE_PRICE_PER_KWH", ge=0, description="tariff for the cost of a charge"
    )
    currency: str = Field("EUR", alias="CHARGE_CURRENCY", pattern=r"^[A-Z]{3}$")


class Kind(StrEnum):
    DRIVE = "drive"
    CHARGE = "charge"
    PARK = "park"


class Reading(NamedTuple):
    """One history row as the engine reads it. A named tuple, not a frozen dataclass: a flush makes
    some 40,000 of these (stored states parsed, new rows), and a tuple is built 5x faster."""

    ts: datetime
    soc: float | None = None
    latitude: float | None = None
    longitude: float | None = None
    speed_kmh: float | None = None
    odometer_km: float | None = None
    power_kw: float | None = None
    charging: bool | None = None
    running: bool | None = None

    def to_json(self) -> list[Any]:
        """As a list in field order: a vehicle's stored state holds a few of these, every flush. The
        time stays a datetime: `rows.dumps` writes it in ISO 8601, faster than `isoformat`."""
        return list(self)

    @classmethod
    def from_json(cls, data: list[Any]) -> Reading:
        return cls(datetime.fromisoformat(data[0]), *data[1:])


READING_FIELDS = Reading._fields


@dataclass(slots=True)
class Period:
    kind: Kind
    start: Reading
    end: Reading
    readings: int = 1
    max_speed_kmh: float | None = None
    gps_km: float = 0.0
    energy_from_power_kwh: float = 0.0
    """Charges: |power| integrated over the intervals where both ends report it."""
    soc_gain_without_power: float = 0.0
    """Charges: SoC points gained over intervals without a power reading."""
    peak_power_kw: float | None = None
    closed: bool = False

    @property
    def duration_s(self) -> float:
        return (self.end.ts - self.start.ts).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in PERIOD_TOTALS},
            "kind": self.kind.value,
            "start": self.start.to_json(),
            "end": self.end.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Period:
        return cls(
            **{
                **data,
                "kind": Kind(data["kind"]),
                "start": Reading.from_json(data["start"]),
                "end": Reading.from_json(data["end"]),
            }
        )


PERIOD_TOTALS = tuple(f.name for f in fields(Period) if f.name not in ("start", "end", "kind"))


@dataclass
class DerivationState:
    """Everything the engine needs to go on after a restart."""

    open: Period | None = None
    last: Reading | None = None
    held: list[Reading] = field(default_factory=list)
    """A drive's readings since the car stopped, until the stop is long enough to end it."""

    def to_json(self) -> dict[str, Any]:
        return {
            "open": self.open.to_json() if self.open else None,
            "last": self.last.to_json() if self.last else None,
            "held": [r.to_json() for r in self.held],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DerivationState:
        return cls(
            open=Period.from_json(data["open"]) if data.get("open") else None,
            last=Reading.from_json(data["last"]) if data.get("last") else None,
            held=[Reading.from_json(r) for r in data.get("held", [])],
        )


def distance_km(a: Reading, b: Reading) -> float:
    if a.latitude is None or a.longitude is None or b.latitude is None or b.longitude is None:
        return 0.0
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat, dlon = lat2 - lat1, math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


class PeriodEngine:
    """Feeds one vehicle's readings, in time order, through the period rules.

    `emitted` collects every period that changed (closed, or the open one as it grows); `discarded`
    the open periods that ended with no duration, which a store must delete if it wrote them.
    """

    def __init__(self, settings: PeriodSettings, state: DerivationState | None = None) -> None:
        self.settings = settings
        self.state = state or DerivationState()
        self.emitted: dict[tuple[Kind, datetime], Period] = {}
        self.discarded: set[tuple[Kind, datetime]] = set()

    def classify(self, r: Reading) -> Kind:
        if r.charging:
            return Kind.CHARGE
        if r.running is not None:
            return Kind.DRIVE if r.running else Kind.PARK
        return Kind.DRIVE if (r.speed_kmh or 0.0) > self.settings.drive_min_speed_kmh else Kind.PARK

    def feed(self, r: Reading) -> None:
        s = self.state
        if s.last is not None and r.ts <= s.last.ts:
            return  # already seen; the store rewinds for readings that arrive late
        if s.open is None:
            self._open(self.classify(r), r)
        else:
            match s.open.kind:
                case Kind.DRIVE:
                    self._in_drive(r)
                case Kind.CHARGE:
                    self._in_charge(r)
                case Kind.PARK:
                    self._in_park(r)
        s.last = r
        if s.open is not None:
            self._emit(s.open)

    def _gap(self, r: Reading) -> float:
        assert self.state.last is not None
        return (r.ts - self.state.last.ts).total_seconds()

    # -- the rules ----------------------------------------------------------------------------

    def _in_drive(self, r: Reading) -> None:
        s, drive = self.state, self.state.open
        assert drive is not None
        assert s.last is not None
        kind = self.classify(r)
        if self._gap(r) > self.settings.drive_max_gap:
            self._end_drive(s.held[0] if s.held else s.last)
            self._in_park(r)
        elif kind is Kind.DRIVE:
            for held in s.held:
                self._fold(drive, held)
            s.held.clear()
            self._fold(drive, r)
        elif kind is Kind.CHARGE:
            self._end_drive(s.held[0] if s.held else r)
            self._in_park(r)
        else:
            s.held.append(r)
            if (r.ts - s.held[0].ts).total_seconds() >= self.settings.drive_stop_grace:
                self._end_drive(s.held[0])

    def _end_drive(self, end: Reading) -> None:
        """Close the drive at `end` and park from there; held readings after `end` join the park."""
        s, drive = self.state, self.state.open
        assert drive is not None
        if end.ts != drive.end.ts:
            self._fold(drive, end)
        rest = [h for h in s.held if h.ts > end.ts]
        s.held.clear()
        self._close(drive)
        self._open(Kind.PARK, end)
        park = self.state.open
        assert park is not None
        for held in rest:
            self._fold(park, held)

    def _in_charge(self, r: Reading) -> None:
        s, charge = self.state, self.state.open
        assert charge is not None
        assert s.last is not None
        kind = self.classify(r)
        if self._gap(r) > self.settings.charge_max_gap or kind is Kind.DRIVE:
            self._close(charge)
            self._open(Kind.PARK, s.last)
            self._in_park(r)
        elif kind is Kind.CHARGE:
            self._fold(charge, r)
        else:
            self._fold(charge, r)  # the first reading after the charge holds its final SoC
            self._close(charge)
            self._open(Kind.PARK, r)

    def _in_park(self, r: Reading) -> None:
        s, park = self.state, self.state.open
        assert park is not None
        assert s.last is not None
        kind = self.classify(r)
        if kind is Kind.DRIVE:
            start = s.last if self._gap(r) <= self.settings.drive_max_gap else r
            if start.ts != park.end.ts:
                self._fold(park, start)
            self._close(park)
            self._open(Kind.DRIVE, start)
            if r.ts != start.ts:
                assert self.state.open is not None
                self._fold(self.state.open, r)
        elif kind is Kind.CHARGE:
            self._fold(park, r)
            self._close(park)
            self._open(Kind.CHARGE, r)
        else:
            self._fold(park, r)

    # -- bookkeeping ----------------------------------------------------------------------------

    def _open(self, kind: Kind, start: Reading) -> None:
        period = Period(kind, start, start)
        if kind is Kind.DRIVE:
            period.max_speed_kmh = start.speed_kmh
        if kind is Kind.CHARGE and start.power_kw is not None:
            period.peak_power_kw = abs(start.power_kw)
        self.state.open = period

    def _close(self, period: Period) -> None:
        period.closed = True
        key = (period.kind, period.start.ts)
        if period.duration_s > 0:
            self._emit(period)
        else:
            self.emitted.pop(key, None)
            self.discarded.add(key)
        self.state.open = None

    def _emit(self, period: Period) -> None:
        key = (period.kind, period.start.ts)
        self.discarded.discard(key)
        self.emitted[key] = period

    @staticmethod
    def _fold(period: Period, r: Reading) -> None:
        previous = period.end
        period.end = r
        period.readings += 1
        if period.kind is Kind.DRIVE:
            period.gps_km += distance_km(previous, r)
            if r.speed_kmh is not None:
                period.max_speed_kmh = max(period.max_speed_kmh or 0.0, r.speed_kmh)
        elif period.kind is Kind.CHARGE:
            hours = (r.ts - previous.ts).total_seconds() / 3600
            if r.power_kw is not None:
                period.peak_power_kw = max(period.peak_power_kw or 0.0, abs(r.power_kw))
            if previous.power_kw is not None and r.power_kw is not None:
                period.energy_from_power_kwh += (abs(previous.power_kw) + abs(r.power_kw)) / 2 * hours
            elif previous.soc is not None and r.soc is not None:
                period.soc_gain_without_power += max(0.0, r.soc - previous.soc)


def derive(settings: PeriodSettings, readings: Iterable[Reading], state: DerivationState | None = None) -> PeriodEngine:
    """Run readings (in time order) through an engine, from `state` or from nothing."""
    engine = PeriodEngine(settings, state)
    for r in readings:
        engine.feed(r)
    return engine
