"""A simulated fleet of 1,000 vehicles at a 5 s interval through Mosquitto into PostgreSQL:
rows written per flush and flush duration.

Gateway, ingest, broker and PostgreSQL are the real ones (gateway and ingest in this process).

    .venv/bin/python -m bench.fleet_flush [--vehicles 1000] [--flushes 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench import run
from bench.servers import running_backend


async def main(vehicles: int, flushes: int, implementation: str) -> None:
    # The benchmark calls flush itself, timing each one, so the scheduled flush is pushed out of the way.
    async with running_backend(implementation, vehicles=vehicles, flush_interval=3600) as backend:
        gateway, ingest = backend.gateway, backend.ingest
        print(f"{vehicles} vehicles, {implementation}, poll every 5 s, flush every 5 s")
        print("flush  vehicles  state rows  telemetry rows  duration ms  gateway publishes")
        durations, rows = [], []
        for n in range(1, flushes + 1):
            await asyncio.sleep(5)
            published = gateway.publisher.published
            started = time.perf_counter()
            result = await ingest.flusher.flush()
            elapsed = (time.perf_counter() - started) * 1000
            if result is None:
                print(f"{n:5d}  (nothing to write)")
                continue
            print(
                f"{n:5d}  {result.vehicles:8d}  {result.state_rows:10d}  {result.telemetry_rows:14d}  "
                f"{elapsed:11.1f}  {published:17d}"
            )
            if result.vehicles == vehicles:  # earlier flushes still carry the initial full publish
                durations.append(elapsed)
                rows.append(result.state_rows + result.telemetry_rows)
        print(
            f"steady state: median {statistics.median(rows):.0f} rows per flush, "
            f"median flush {statistics.median(durations):.1f} ms, max {max(durations):.1f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=1000)
    parser.add_argument("--flushes", type=int, default=8)
    parser.add_argument("--broker", default="mosquitto", choices=["mosquitto", "amqtt"])
    args = parser.parse_args()
    run(main(args.vehicles, args.flushes, args.broker))
