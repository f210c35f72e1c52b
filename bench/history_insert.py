"""The history statement alone: a steady flush's history rows (one new reading of 12 keys per car)
written into `vehicle_telemetry` with nothing beside them, by the sink's `upsert_telemetry` and by
plainer statements, against `COPY` of the same rows (the baseline). Each round writes readings of a
new minute, so every row is new; the median of three rounds.

    .venv/bin/python -m bench.history_insert [--vehicles 10000]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from datetime import timedelta
from typing import Any

import asyncpg

from bench import run
from bench.ingest_throughput import STEADY_KEYS, T0, _full_vehicle, bench_vin
from bench.servers import postgres
from common.database import apply_migrations
from ingest.cache import TelemetryCache
from ingest.postgres_sink import UPSERT_TELEMETRY, UPSERT_VEHICLES, telemetry_arguments
from ingest.rows import TELEMETRY_COLUMNS, VEHICLE_COLUMNS, columns, plan_rows

ROUNDS = 3
_CAST = ", ".join(
    f"${n}::{kind}[]"
    for n, kind in enumerate(
        ("text", "timestamptz", *["float8"] * 5, "bool", "float8", "float8", "bool", "float8", "float8", "jsonb"),
        start=1,
    )
)
_INTO = f"INSERT INTO vehicle_telemetry ({', '.join(TELEMETRY_COLUMNS)}) SELECT * FROM unnest({_CAST})"
STATEMENTS = {
    "upsert_telemetry (the sink's)": UPSERT_TELEMETRY,
    "INSERT ... SELECT FROM unnest": _INTO,
    "the same, ON CONFLICT DO NOTHING RETURNING": f"{_INTO} ON CONFLICT DO NOTHING RETURNING vin, ts",
}


def readings(cache: TelemetryCache, vehicles: int, minute: int) -> list[list[Any]]:
    """A round's history rows as the sink sends them: a column each."""
    for v in range(vehicles):
        for topic, payload in _full_vehicle(bench_vin(v), T0 + timedelta(minutes=minute), STEADY_KEYS):
            cache.add(topic, payload)
    return telemetry_arguments(plan_rows(cache.take_changes()))


async def main(vehicles: int) -> None:
    print(f"history rows of a steady flush of {vehicles} vehicles, written alone; median of {ROUNDS} rounds")
    cache = TelemetryCache("saic")
    for v in range(vehicles):  # every topic once: the readings that follow carry the steady keys only
        for topic, payload in _full_vehicle(bench_vin(v), T0):
            cache.add(topic, payload)
    first = plan_rows(cache.take_changes())
    with postgres() as url:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
        try:
            await apply_migrations(pool)
            async with pool.acquire() as conn:
                await conn.execute(UPSERT_VEHICLES, *columns(first.vehicles, VEHICLE_COLUMNS))
                rounds = itertools.count(1)

                async def timed(statement: str | None) -> float:
                    """Median seconds to write a round by `statement`; None: by COPY."""
                    seconds = []
                    for _ in range(ROUNDS):
                        arguments = readings(cache, vehicles, next(rounds))
                        records = list(zip(*arguments, strict=True)) if statement is None else []
                        started = time.perf_counter()
                        if statement is None:
                            await conn.copy_records_to_table(
                                "vehicle_telemetry", records=records, columns=list(TELEMETRY_COLUMNS)
                            )
                        else:
                            await conn.fetch(statement, *arguments)
                        seconds.append(time.perf_counter() - started)
                    return statistics.median(seconds)

                copy = await timed(None)
                for name, statement in STATEMENTS.items():
                    seconds = await timed(statement)
                    print(f"{name:45s} {seconds:6.3f} s   {seconds / copy:5.2f}x COPY")
                print(f"{'COPY (baseline)':45s} {copy:6.3f} s")
        finally:
            await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=10_000)
    run(main(parser.parse_args().vehicles))
