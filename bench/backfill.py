"""Backfill speed: `python -m ingest rebuild` over a million history rows, beside the rules alone.

History is made up of drive, park and charge cycles at a 5 s poll (driving and charging) and a
5 min poll (parked), for V vehicles, loaded with COPY. The rebuild reads it back in time order per
vehicle, derives every period and writes them; the baseline is the same engine fed the same readings
from memory, without the database.

    .venv/bin/python -m bench.backfill [--rows 1000000] [--vehicles 100]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import run
from bench.servers import postgres
from common.database import apply_migrations, create_pool
from common.settings import DatabaseSettings
from ingest.period_store import rebuild
from ingest.periods import READING_FIELDS, PeriodSettings, Reading, derive

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CYCLE = (("drive", 240, 5.0), ("park", 12, 300.0), ("charge", 240, 5.0), ("park", 24, 300.0))
"""(phase, readings, seconds between readings): a 20 min drive, an hour parked, a 20 min charge, two hours parked."""


def history(vin: str, count: int) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    ts, soc, odometer, lat = T0, 80.0, 10_000.0, 52.0
    while len(rows) < count:
        for phase, readings, step in CYCLE:
            for _ in range(readings):
                if len(rows) == count:
                    return rows
                ts += timedelta(seconds=step)
                driving, charging = phase == "drive", phase == "charge"
                if driving:
                    odometer += 0.07
                    lat += 0.0006
                    soc -= 0.05
                elif charging:
                    soc = min(100.0, soc + 0.06)
                else:
                    soc -= 0.01
                power = 9.0 if driving else (-11.0 if charging else 0.0)
                rows.append(
                    (
                        vin,
                        ts,
                        round(soc, 1),
                        lat,
                        4.9,
                        50.0 if driving else 0.0,
                        odometer,
                        power,
                        charging,
                        driving,
                        "{}",
                    )
                )
    return rows


COLUMNS = ["vin", *READING_FIELDS, "payload"]
"""The history rows' columns: `history` builds its tuples in this order."""


async def main(total: int, vehicles: int) -> None:
    settings = PeriodSettings.from_env({})
    per_vehicle = total // vehicles
    with postgres() as url:
        pool = await create_pool(DatabaseSettings.from_env({"DATABASE_URL": url}), max_size=2)
        await apply_migrations(pool)
        async with pool.acquire() as conn:
            vins = [f"LSJBACKF{i:09d}" for i in range(vehicles)]
            await conn.executemany("INSERT INTO vehicles (vin, account) VALUES ($1, 'bench')", [(v,) for v in vins])
            started = time.perf_counter()
            engine_seconds = 0.0
            for vin in vins:
                rows = history(vin, per_vehicle)
                await conn.copy_records_to_table("vehicle_telemetry", records=rows, columns=COLUMNS)
                readings = [Reading(*r[1:-1]) for r in rows]  # the columns between vin and payload
                engine_started = time.perf_counter()
                derive(settings, readings)
                engine_seconds += time.perf_counter() - engine_started
            loaded = time.perf_counter() - started
            rows_total = per_vehicle * vehicles
            print(f"{rows_total:,} history rows for {vehicles} vehicles loaded in {loaded:.1f} s (COPY, context)")
            print(f"the rules alone, from memory   {rows_total / engine_seconds:10,.0f} readings/s (baseline)")
            started = time.perf_counter()
            counts = await rebuild(conn, settings)
            elapsed = time.perf_counter() - started
            assert sum(counts.values()) == rows_total
            periods = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM drives) AS d, (SELECT count(*) FROM charges) AS c,"
                " (SELECT count(*) FROM parks) AS p"
            )
            assert periods is not None
            print(
                f"rebuild from PostgreSQL        {rows_total / elapsed:10,.0f} readings/s: {elapsed:.1f} s for "
                f"{rows_total:,} rows ({(rows_total / elapsed) / (rows_total / engine_seconds):.2f} x the rules "
                f"alone); {periods['d']} drives, {periods['c']} charges, {periods['p']} parks"
            )
        await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--vehicles", type=int, default=100)
    args = parser.parse_args()
    run(main(args.rows, args.vehicles))
