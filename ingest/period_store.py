"""Drives, charges and parks in PostgreSQL: derived inside the flush transaction, or rebuilt from history.

Live derivation sees only the history rows a flush inserted. Rows newer than a vehicle's last
derived reading continue its stored state. An older row (a spooled batch written back after an
outage) rewinds the vehicle to the start of the period before the one it falls in and derives from
there again, so the result is the one a rebuild from the whole history gives.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from common.database import Connection
from ingest.periods import (
    READING_FIELDS,
    DerivationState,
    Kind,
    Period,
    PeriodEngine,
    PeriodSettings,
    Reading,
    derive,
)
from ingest.rows import dumps

log = logging.getLogger(__name__)

REBUILD_BATCH = 20_000

# One derivation of a vehicle at a time (a flush, a rebuild, another ingest replica). A lock per
# vehicle would put 10,000 locks in one flush's transaction, past PostgreSQL's shared lock table
# (max_locks_per_transaction x max_connections, 6,400 by default): vehicles share 1,024 buckets
# instead, locked in order so that two flushes cannot deadlock.
DERIVATION_LOCK = 0x5A1C_0002
LOCK_VEHICLES = f"""
SELECT count(pg_advisory_xact_lock({DERIVATION_LOCK}, bucket))
FROM (SELECT DISTINCT hashtext(vin) & 1023 AS bucket FROM unnest($1::text[]) AS v(vin) ORDER BY 1) AS buckets
"""  # noqa: S608 - a constant

STATES = "SELECT vin, state FROM vehicle_derivation WHERE vin = ANY($1::text[])"

CAPACITY = """
SELECT CASE WHEN jsonb_typeof(state -> 'drivetrain/totalBatteryCapacity') = 'number'
            THEN (state ->> 'drivetrain/totalBatteryCapacity')::float8 END
FROM vehicle_state WHERE vin = $1
"""

SAVE_STATES = """
INSERT INTO vehicle_derivation (vin, state, updated_at)
SELECT vin, state, now() FROM unnest($1::text[], $2::json[]) AS r(vin, state)
ON CONFLICT (vin) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at
"""

REWIND_POINT = """
SELECT start_ts FROM (
    SELECT start_ts FROM drives WHERE vin = $1 AND start_ts < $2
    UNION ALL SELECT start_ts FROM charges WHERE vin = $1 AND start_ts < $2
    UNION ALL SELECT start_ts FROM parks WHERE vin = $1 AND start_ts < $2
) p ORDER BY start_ts DESC OFFSET 1 LIMIT 1
"""

# The column lists below are this module's constants, never input. A reading's fields are columns of
# vehicle_telemetry under the same names.
READINGS = (
    f"SELECT {', '.join(READING_FIELDS)} FROM vehicle_telemetry "  # noqa: S608
    "WHERE vin = $1 AND ts >= COALESCE($2::timestamptz, '-infinity') ORDER BY ts"
)

TABLES = {Kind.DRIVE: "drives", Kind.CHARGE: "charges", Kind.PARK: "parks"}

KIND_COLUMNS: dict[Kind, tuple[tuple[str, str], ...]] = {
    Kind.DRIVE: (
        ("start_latitude", "float8"),
        ("start_longitude", "float8"),
        ("end_latitude", "float8"),
        ("end_longitude", "float8"),
        ("start_odometer_km", "float8"),
        ("end_odometer_km", "float8"),
        ("distance_km", "float8"),
        ("start_soc", "float8"),
        ("end_soc", "float8"),
        ("energy_used_kwh", "float8"),
        ("efficiency_wh_per_km", "float8"),
        ("avg_speed_kmh", "float8"),
        ("max_speed_kmh", "float8"),
    ),
    Kind.CHARGE: (
        ("start_soc", "float8"),
        ("end_soc", "float8"),
        ("energy_added_kwh", "float8"),
        ("energy_source", "text"),
        ("avg_power_kw", "float8"),
        ("peak_power_kw", "float8"),
        ("charger_type", "text"),
        ("latitude", "float8"),
        ("longitude", "float8"),
        ("cost", "float8"),
        ("currency", "text"),
    ),
    Kind.PARK: (
        ("start_soc", "float8"),
        ("end_soc", "float8"),
        ("soc_lost", "float8"),
        ("drain_per_hour", "float8"),
        ("latitude", "float8"),
        ("longitude", "float8"),
    ),
}
COMMON_COLUMNS = (
    ("vin", "text"),
    ("start_ts", "timestamptz"),
    ("end_ts", "timestamptz"),
    ("in_progress", "bool"),
    ("duration_s", "float8"),
    ("readings", "int4"),
)


COLUMNS = {kind: (*COMMON_COLUMNS, *KIND_COLUMNS[kind]) for kind in Kind}
"""Every column of each table, as (name, PostgreSQL type)."""


def _upsert_sql(kind: Kind) -> str:
    columns = COLUMNS[kind]
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(f"${i}::{pgtype}[]" for i, (_, pgtype) in enumerate(columns, start=1))
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name, _ in columns[2:])
    return (
        f"INSERT INTO {TABLES[kind]} ({names}) SELECT * FROM unnest({arrays}) "  # noqa: S608
        f"ON CONFLICT (vin, start_ts) DO UPDATE SET {updates}"
    )


UPSERTS = {kind: _upsert_sql(kind) for kind in Kind}


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def period_row(vin: str, period: Period, capacity_kwh: float | None, settings: PeriodSettings) -> dict[str, Any]:
    """The table row of a period: the figures a person reads, from the engine's running totals."""
    start, end = period.start, period.end
    duration = period.duration_s
    hours = duration / 3600
    row: dict[str, Any] = {
        "vin": vin,
        "start_ts": start.ts,
        "end_ts": end.ts,
        "in_progress": not period.closed,
        "duration_s": duration,
        "readings": period.readings,
    }
    if period.kind is Kind.DRIVE:
        odometer = _difference(end.odometer_km, start.odometer_km)
        distance = odometer if odometer is not None and odometer >= 0 else period.gps_km
        soc_used = _difference(start.soc, end.soc)
        energy = None if soc_used is None or capacity_kwh is None else soc_used / 100 * capacity_kwh
        row |= {
            "start_latitude": start.latitude,
            "start_longitude": start.longitude,
            "end_latitude": end.latitude,
            "end_longitude": end.longitude,
            "start_odometer_km": start.odometer_km,
            "end_odometer_km": end.odometer_km,
            "distance_km": _r(distance),
            "start_soc": start.soc,
            "end_soc": end.soc,
            "energy_used_kwh": _r(energy),
            "efficiency_wh_per_km": _r(energy * 1000 / distance, 1) if energy is not None and distance >= 0.5 else None,
            "avg_speed_kmh": _r(distance / hours, 1) if hours > 0 else None,
            "max_speed_kmh": period.max_speed_kmh,
        }
    elif period.kind is Kind.CHARGE:
        from_soc = period.soc_gain_without_power
        if period.peak_power_kw is None:
            source = "soc"
            energy = None if capacity_kwh is None else _soc_gain(period) / 100 * capacity_kwh
        else:
            source = "power" if from_soc == 0 else "power+soc"
            energy = period.energy_from_power_kwh + (from_soc / 100 * capacity_kwh if capacity_kwh else 0.0)
        peak = period.peak_power_kw
        row |= {
            "start_soc": start.soc,
            "end_soc": end.soc,
            "energy_added_kwh": _r(energy),
            "energy_source": source if energy is not None else None,
            "avg_power_kw": _r(energy / hours, 2) if energy is not None and hours > 0 else None,
            "peak_power_kw": peak,
            "charger_type": None if peak is None else ("DC" if peak > settings.dc_min_power_kw else "AC"),
            "latitude": start.latitude,
            "longitude": start.longitude,
            "cost": _r(energy * settings.price_per_kwh, 2)
            if energy is not None and settings.price_per_kwh is not None
            else None,
            "currency": settings.currency if settings.price_per_kwh is not None else None,
        }
    else:
        lost = _difference(start.soc, end.soc)
        row |= {
            "start_soc": start.soc,
            "end_soc": end.soc,
            "soc_lost": _r(lost),
            # Under an hour the SoC's 0.1 steps say more about rounding than about drain.
            "drain_per_hour": _r(lost / hours) if lost is not None and hours >= 1 else None,
            "latitude": start.latitude,
            "longitude": start.longitude,
        }
    return row


def _soc_gain(period: Period) -> float:
    return max(0.0, _difference(period.end.soc, period.start.soc) or 0.0)


def reading(row: Mapping[str, Any] | asyncpg.Record) -> Reading:
    return Reading(*(row[name] for name in READING_FIELDS))


def readings_by_vehicle(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Reading]]:
    """History rows (`rows.TELEMETRY_COLUMNS`) as each vehicle's readings, in the rows' order."""
    readings: dict[str, list[Reading]] = {}
    for row in rows:
        readings.setdefault(row["vin"], []).append(reading(row))
    return readings


@dataclass
class DerivedBatch:
    """What one derivation run writes."""

    rows: dict[Kind, list[dict[str, Any]]]
    deleted: list[tuple[Kind, str, datetime]]
    states: dict[str, DerivationState]

    @classmethod
    def empty(cls) -> DerivedBatch:
        return cls({kind: [] for kind in Kind}, [], {})

    def add(self, vin: str, engine: PeriodEngine, capacity_kwh: float | None, settings: PeriodSettings) -> None:
        for period in engine.emitted.values():
            self.rows[period.kind].append(period_row(vin, period, capacity_kwh, settings))
        self.deleted.extend((kind, vin, start) for kind, start in engine.discarded)
        self.states[vin] = engine.state

    @property
    def periods(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


async def _write(conn: Connection, batch: DerivedBatch) -> None:
    for kind, vin, start in batch.deleted:
        await conn.execute(f"DELETE FROM {TABLES[kind]} WHERE vin = $1 AND start_ts = $2", vin, start)  # noqa: S608
    for kind, rows in batch.rows.items():
        if rows:
            await conn.execute(UPSERTS[kind], *[[row[name] for row in rows] for name, _ in COLUMNS[kind]])
    if batch.states:
        await conn.execute(SAVE_STATES, list(batch.states), [dumps(s.to_json()) for s in batch.states.values()])


async def _delete_from(conn: Connection, vin: str, since: datetime | None) -> None:
    """The vehicle's periods that start at `since` or later (None: all of them)."""
    for table in TABLES.values():
        await conn.execute(
            f"DELETE FROM {table} WHERE vin = $1 AND start_ts >= COALESCE($2::timestamptz, '-infinity')",  # noqa: S608
            vin,
            since,
        )


async def lock_and_read_states(conn: Connection, vins: list[str]) -> dict[str, str]:
    """Lock the vehicles' derivation (until the transaction ends) and read their stored states (JSON)."""
    await conn.execute(LOCK_VEHICLES, vins)
    return {r["vin"]: r["state"] for r in await conn.fetch(STATES, vins)}


def derive_following(
    settings: PeriodSettings, stored: Mapping[str, str], inserted: Mapping[str, Sequence[Reading]]
) -> tuple[dict[str, PeriodEngine], dict[str, list[Reading]]]:
    """Derive, from its stored state, each vehicle whose new readings all come after it: no database,
    so this runs while the history statement does. Returns those engines, and the readings (in time
    order) of the vehicles that need a rewind first (`derive_rewinding`)."""
    engines: dict[str, PeriodEngine] = {}
    rewind: dict[str, list[Reading]] = {}
    for vin, new in inserted.items():
        readings = sorted(new, key=lambda r: r.ts)
        state = DerivationState.from_json(orjson.loads(stored[vin])) if vin in stored else None
        if state is not None and state.last is not None and readings[0].ts <= state.last.ts:
            rewind[vin] = readings
        else:
            engines[vin] = derive(settings, readings, state)
    return engines, rewind


async def derive_rewinding(
    conn: Connection, settings: PeriodSettings, rewind: Mapping[str, list[Reading]]
) -> dict[str, PeriodEngine]:
    """Vehicles with a reading older than their stored state (a spooled batch written back): from the
    start of the period before the one it falls in, over the stored history (the new rows included)."""
    engines: dict[str, PeriodEngine] = {}
    for vin, readings in rewind.items():
        since = await conn.fetchval(REWIND_POINT, vin, readings[0].ts)
        await _delete_from(conn, vin, since)
        engines[vin] = derive(settings, [reading(r) for r in await conn.fetch(READINGS, vin, since)])
    return engines


def derived_batch(
    settings: PeriodSettings, engines: Mapping[str, PeriodEngine], capacities: Mapping[str, float | None]
) -> DerivedBatch:
    """What the engines derived, with each car's battery capacity as the flush knows it."""
    batch = DerivedBatch.empty()
    for vin, engine in engines.items():
        batch.add(vin, engine, capacities.get(vin), settings)
    return batch


async def write_derived(
    conn: Connection,
    settings: PeriodSettings,
    engines: Mapping[str, PeriodEngine],
    capacities: Mapping[str, float | None],
) -> int:
    """Store what the engines derived; returns how many period rows were written."""
    batch = derived_batch(settings, engines, capacities)
    await _write(conn, batch)
    return batch.periods


NEVER_DERIVED = """
SELECT EXISTS (SELECT 1 FROM vehicle_telemetry) AND NOT EXISTS (SELECT 1 FROM vehicle_derivation)
"""


async def never_derived(conn: Connection) -> bool:
    """History is stored but nothing was ever derived from it: stored before derivation existed."""
    return bool(await conn.fetchval(NEVER_DERIVED))


async def rebuild(conn: Connection, settings: PeriodSettings, vins: Iterable[str] | None = None) -> dict[str, int]:
    """Derive every period again from the whole history, vehicle by vehicle, each in one transaction.

    Returns the readings read per vehicle.
    """
    if vins is None:
        vins = [r["vin"] for r in await conn.fetch("SELECT vin FROM vehicles ORDER BY vin")]
    counts: dict[str, int] = defaultdict(int)
    for vin in vins:
        async with conn.transaction():
            await conn.execute(LOCK_VEHICLES, [vin])
            await _delete_from(conn, vin, None)
            await conn.execute("DELETE FROM vehicle_derivation WHERE vin = $1", vin)
            capacity = await conn.fetchval(CAPACITY, vin)
            engine = PeriodEngine(settings)
            cursor = conn.cursor(READINGS, vin, None, prefetch=REBUILD_BATCH)
            async for row in cursor:
                engine.feed(reading(row))
                counts[vin] += 1
            batch = DerivedBatch.empty()
            batch.add(vin, engine, capacity, settings)
            batch.deleted.clear()  # everything was deleted above
            await _write(conn, batch)
        log.info("rebuilt periods of %s from %d readings", vin, counts[vin])
    return dict(counts)
