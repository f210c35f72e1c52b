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

from bench.servers import broker, postgres
from common.settings import DatabaseSettings
from gateway.app import Gateway
from gateway.settings import GatewaySettings
from gateway.simulator import SimulatedFleet
from ingest.app import Ingest, connect_database
from ingest.settings import IngestSettings


async def main(vehicles: int, flushes: int, implementation: str) -> None:
    with broker(implementation) as mqtt, postgres() as url:
        db = DatabaseSettings.from_env({"DATABASE_URL": url})
        stop = asyncio.Event()
        pool = await connect_database(db, stop)
        assert pool is not None
        ingest = Ingest(IngestSettings.from_env({"INGEST_FLUSH_INTERVAL": "3600"}), mqtt, pool)
        gw_settings = GatewaySettings.from_env({"SIMULATED_VEHICLES": str(vehicles), "GATEWAY_POLL_INTERVAL": "5"})
        gateway = Gateway(gw_settings, mqtt, SimulatedFleet(vehicles, seed=1, command_latency=0))
        tasks = [asyncio.create_task(ingest.run(stop))]
        await ingest.mqtt.wait_connected(10)
        tasks.append(asyncio.create_task(gateway.run(stop)))
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
            if n > 1:  # the first flush carries the initial full publish
                durations.append(elapsed)
                rows.append(result.state_rows + result.telemetry_rows)
        print(
            f"steady state: median {statistics.median(rows):.0f} rows per flush, "
            f"median flush {statistics.median(durations):.1f} ms, max {max(durations):.1f} ms"
        )
        stop.set()
        await asyncio.gather(*tasks)
        await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=1000)
    parser.add_argument("--flushes", type=int, default=8)
    parser.add_argument("--broker", default="mosquitto", choices=["mosquitto", "amqtt"])
    args = parser.parse_args()
    asyncio.run(main(args.vehicles, args.flushes, args.broker))
