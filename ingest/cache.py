"""The per-vehicle cache: every reading merged into the vehicle's latest state, plus what changed
since the last flush."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common import topics
from common.values import MAX_EXTRA_KEYS, TelemetryValue, decode, encode, is_extra, is_vin

HISTORY_KEYS = frozenset({topics.DRIVETRAIN_SOC, topics.LOCATION_LATITUDE, topics.LOCATION_LONGITUDE})
"""A reading that carries one of these is written to the history (the seed's rule)."""


MAX_READINGS_PER_FLUSH = 5_000
"""Completed readings kept per vehicle between flushes: memory stays bounded whatever the input rate.
A safety net only: the ingest flushes early once `completed_readings` pile up (ingest.app)."""


_UNKNOWN = object()


class MalformedMessage(ValueError):
    """A message the contract does not allow; the reason says why."""


@dataclass
class VehicleEntry:
    account: str
    values: dict[str, TelemetryValue] = field(default_factory=dict)
    extra_keys: int = 0
    """Keys outside the contract taken as extra values (bounded by MAX_EXTRA_KEYS)."""
    dirty: set[str] = field(default_factory=set)
    unsaved: set[str] = field(default_factory=set)
    """Keys changed since the last dated snapshot: what the state row may not have yet."""
    reading_ts: datetime | None = None
    telemetry_at: datetime | None = None
    """When telemetry last arrived: the reading time for a publisher that sends no lastVehicleState."""
    last_reading_at: datetime | None = None
    """When a reading (telemetry or its time) last arrived: how the telemetry-gap alert sees silence."""
    completed: list[VehicleSnapshot] = field(default_factory=list)
    """Readings finished (a newer one began) but not flushed yet."""
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
    """What this reading changed: its history row's payload."""
    unsaved: frozenset[str] | None = None
    """Keys the latest-state row may lack (changed since the vehicle's last dated snapshot); None: all.
    Sending only these keeps a steady-state flush small: the database merges them into the row."""

    @property
    def goes_to_history(self) -> bool:
        return self.ts is not None and bool(self.changed & HISTORY_KEYS)


class TelemetryCache:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._vehicles: dict[str, VehicleEntry] = {}
        self.accepted = 0
        self.malformed = 0
        self.merged_readings = 0
        self.completed_readings = 0
        """Completed readings waiting for the next flush, across all vehicles."""
        self._new: list[str] = []
        """Vehicles first seen (neither stored nor received before) since the last flush or `take_new_vehicles`."""

    def __len__(self) -> int:
        return len(self._vehicles)

    def __contains__(self, vin: object) -> bool:
        return vin in self._vehicles

    def seed(self, vin: str, account: str, state: dict[str, Any]) -> None:
        """What is already stored for a vehicle (its latest state): a retained re-delivery of the same
        values after a start or a reconnect is then no new reading. Values the contract refuses are left out."""
        if not is_vin(vin):
            return
        entry = self._vehicles.setdefault(vin, VehicleEntry(account=account))
        for key, stored in state.items():
            with contextlib.suppress(ValueError):
                entry.values.setdefault(key, decode(key, encode(stored)))
        entry.extra_keys = sum(1 for key in entry.values if is_extra(key))  # the bound counts what is stored

    def add(self, topic: str, payload: bytes, received_at: datetime | None = None, *, retained: bool = False) -> None:
        """Merge one message; raises MalformedMessage (and counts it) for one that breaks the contract.

        A retained message equal to what is known is the broker re-sending it (after a reconnect or
        on a start), not a reading: it changes nothing.
        """
        try:
            parsed = topics.parse_vehicle_topic(self.prefix, topic)
            if parsed is None:
                raise MalformedMessage(f"not a vehicle topic: {topic[:120]!r}")
            if parsed.path.rsplit("/", maxsplit=1)[-1] in (topics.SET_SUFFIX, topics.RESULT_SUFFIX):
                return  # a `/set` request or its (retained) result: a conversation, not telemetry
            if not payload:
                return  # an empty retained payload clears a topic; nothing to record
            if not is_vin(parsed.vin):
                raise MalformedMessage(
                    f"{parsed.vin[:40]!r} is not a VIN (17 characters, digits and A-Z without I, O, Q)"
                )
            try:
                value = decode(parsed.path, payload)
            except (ValueError, UnicodeDecodeError) as exc:
                raise MalformedMessage(str(exc)) from None
            entry = self._vehicles.get(parsed.vin)
            new_extra = (entry is None or parsed.path not in entry.values) and is_extra(parsed.path)
            if new_extra and entry is not None and entry.extra_keys >= MAX_EXTRA_KEYS:
                raise MalformedMessage(f"{parsed.path}: more than {MAX_EXTRA_KEYS} keys outside the contract")
        except MalformedMessage:
            self.malformed += 1
            raise
        if retained and entry is not None and entry.values.get(parsed.path, _UNKNOWN) == value:
            self.accepted += 1
            return
        now = received_at or datetime.now(UTC)
        if entry is None:
            entry = self._vehicles[parsed.vin] = VehicleEntry(account=parsed.account)
            self._new.append(parsed.vin)
        entry.extra_keys += new_extra
        if not retained:
            # Retained values may be another account's, left on the broker after the car moved
            # (or while a stopped gateway's tree stays): only live telemetry says where it is now.
            entry.account = parsed.account
        entry.received_at = now
        if parsed.path == topics.REFRESH_LAST_VEHICLE_STATE and isinstance(value, datetime):
            if entry.reading_ts is not None and value != entry.reading_ts and entry.dirty:
                # A new reading begins before the last one was flushed: keep the last one whole,
                # so that every reading the car sent becomes its own history row.
                self._complete(parsed.vin, entry)
            entry.reading_ts = value
            entry.last_reading_at = now
        elif parsed.category in topics.INGESTED_CATEGORIES:
            entry.telemetry_at = entry.last_reading_at = now
        entry.values[parsed.path] = value
        entry.dirty.add(parsed.path)
        entry.unsaved.add(parsed.path)
        self.accepted += 1

    def _complete(self, vin: str, entry: VehicleEntry) -> None:
        if len(entry.completed) >= MAX_READINGS_PER_FLUSH:
            self.merged_readings += 1  # a flood of readings: the oldest unflushed one is merged away
            entry.completed.pop(0)
            self.completed_readings -= 1
        entry.completed.append(self._snapshot(vin, entry))
        self.completed_readings += 1
        entry.dirty = set()

    @staticmethod
    def _snapshot(vin: str, entry: VehicleEntry) -> VehicleSnapshot:
        ts = entry.reading_ts or entry.telemetry_at
        unsaved = frozenset(entry.unsaved)
        if ts is not None:  # an undated snapshot writes no state row: its keys wait for a dated one
            entry.unsaved = set()
        return VehicleSnapshot(
            vin=vin,
            account=entry.account,
            ts=ts,
            ts_from_arrival=entry.reading_ts is None,
            received_at=entry.received_at,
            values=dict(entry.values),
            changed=frozenset(entry.dirty),
            unsaved=unsaved,
        )

    def take_changes(self) -> list[VehicleSnapshot]:
        """Every completed reading and every vehicle changed since the last call, oldest first."""
        snapshots: list[VehicleSnapshot] = []
        self.completed_readings = 0
        self._new = []  # the flush writes their rows
        for vin, entry in self._vehicles.items():
            snapshots += entry.completed
            entry.completed = []
            if entry.dirty:
                snapshots.append(self._snapshot(vin, entry))
                entry.dirty = set()
        return snapshots

    @property
    def has_new_vehicles(self) -> bool:
        return bool(self._new)

    def take_new_vehicles(self) -> list[dict[str, Any]]:
        """Rows (`rows.VEHICLE_COLUMNS`) for the vehicles first seen since the last call or flush."""
        new, self._new = self._new, []
        return [
            {"vin": vin, "account": e.account, "brand": None, "model": None, "last_seen": e.received_at}
            for vin in new
            if (e := self._vehicles.get(vin)) is not None
        ]

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
