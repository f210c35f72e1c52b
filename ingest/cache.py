"""The per-vehicle cache: every reading merged into the vehicle's latest state, plus what changed
since the last flush."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from common import topics
from common.values import TelemetryValue, decode

HISTORY_KEYS = frozenset({topics.DRIVETRAIN_SOC, topics.LOCATION_LATITUDE, topics.LOCATION_LONGITUDE})
"""A reading that carries one of these is written to the history (the seed's rule)."""


class MalformedMessage(ValueError):
    """A message the contract does not allow; the reason says why."""


@dataclass
class VehicleEntry:
    account: str
    values: dict[str, TelemetryValue] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    reading_ts: datetime | None = None
    telemetry_at: datetime | None = None
    """When telemetry last arrived: the reading time for a publisher that sends no lastVehicleState."""
    last_reading_at: datetime | None = None
    """When a reading (telemetry or its time) last arrived: how the telemetry-gap alert sees silence."""
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class VehicleSnapshot:
    """One vehicle's merged state at flush time."""

    vin: str
    account: str
    ts: datetime | None
    """The car's reading time (`refresh/lastVehicleState`, else when its telemetry arrived); None
    while only info or availability topics have arrived, so that they never outdate a real reading."""
    received_at: datetime
    ts_from_arrival: bool
    """True when `ts` is the arrival time, not the car's own reading time."""
    values: dict[str, TelemetryValue]
    changed: frozenset[str]

    @property
    def goes_to_history(self) -> bool:
        return self.ts is not None and bool(self.changed & HISTORY_KEYS)


class TelemetryCache:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._vehicles: dict[str, VehicleEntry] = {}
        self.accepted = 0
        self.malformed = 0

    def __len__(self) -> int:
        return len(self._vehicles)

    def __contains__(self, vin: object) -> bool:
        return vin in self._vehicles

    def add(self, topic: str, payload: bytes, received_at: datetime | None = None) -> None:
        """Merge one message; raises MalformedMessage (and counts it) for one that breaks the contract."""
        try:
            parsed = topics.parse_vehicle_topic(self.prefix, topic)
            if parsed is None:
                raise MalformedMessage(f"not a vehicle topic: {topic[:120]!r}")
            if not payload:
                return  # an empty retained payload clears a topic; nothing to record
            try:
                value = decode(parsed.path, payload)
            except (ValueError, UnicodeDecodeError) as exc:
                raise MalformedMessage(str(exc)) from None
        except MalformedMessage:
            self.malformed += 1
            raise
        now = received_at or datetime.now(UTC)
        entry = self._vehicles.get(parsed.vin)
        if entry is None:
            entry = self._vehicles[parsed.vin] = VehicleEntry(account=parsed.account)
        entry.account = parsed.account
        entry.received_at = now
        if parsed.path == topics.REFRESH_LAST_VEHICLE_STATE and isinstance(value, datetime):
            entry.reading_ts = value
            entry.last_reading_at = now
        elif parsed.category in topics.INGESTED_CATEGORIES:
            entry.telemetry_at = entry.last_reading_at = now
        entry.values[parsed.path] = value
        entry.dirty.add(parsed.path)
        self.accepted += 1

    def take_changes(self) -> list[VehicleSnapshot]:
        """Snapshots of every vehicle changed since the last call; their change marks are cleared."""
        snapshots = []
        for vin, entry in self._vehicles.items():
            if not entry.dirty:
                continue
            snapshots.append(
                VehicleSnapshot(
                    vin=vin,
                    account=entry.account,
                    ts=entry.reading_ts or entry.telemetry_at,
                    ts_from_arrival=entry.reading_ts is None,
                    received_at=entry.received_at,
                    values=dict(entry.values),
                    changed=frozenset(entry.dirty),
                )
            )
            entry.dirty = set()
        return snapshots

    def reading_ages(self, now: datetime) -> dict[str, float]:
        """Seconds since each vehicle's last reading arrived (vehicles seen since the start)."""
        return {
            vin: (now - entry.last_reading_at).total_seconds()
            for vin, entry in self._vehicles.items()
            if entry.last_reading_at is not None
        }

    @property
    def pending(self) -> int:
        return sum(1 for e in self._vehicles.values() if e.dirty)
