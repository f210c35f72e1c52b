"""CPU per SAIC API call in the gateway's process: the library's own HTTP client (httpx on
httpcore's pool, `SAIC_HTTP_POOL=library`) against the gateway's sender (`gateway.saic.http`,
straight through aiohttp), the real saic-ismart-client-ng both times, against the SAIC test server
in a process of its own with no added latency. Ten calls in flight at a time, as a polled fleet has.

    .venv/bin/python -m bench.saic_calls [--calls 2000] [--rounds 3]

Each round measures the two one after the other; a figure is this process's CPU (user and system)
divided by the vehicle-status calls made.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import run
from gateway.saic.http import saic_api
from gateway.saic.settings import SaicSettings
from local_stack.ports import free_port, wait_for_port

ACCOUNT = "owner@example.com"  # the SAIC test server's default user
IN_FLIGHT = 10
POOLS = ("library", "aiohttp")


async def cpu_per_call(port: int, pool: str, calls: int) -> float:
    env = {
        "SAIC_USERNAME": ACCOUNT,
        "SAIC_PWD": "correct horse",
        "SAIC_BASE_URI": f"http://127.0.0.1:{port}/api.app/v1/",
        "SAIC_HTTP_POOL": pool,
    }
    api = saic_api(SaicSettings.from_env(env))
    try:
        await api.login()
        vins = [v.vin for v in (await api.vehicle_list()).vinList if v.vin]
        await asyncio.gather(*(api.get_vehicle_status(vin) for vin in vins))  # connections open, decoders built
        started = time.process_time()
        for n in range(0, calls, IN_FLIGHT):
            await asyncio.gather(*(api.get_vehicle_status(vins[(n + k) % len(vins)]) for k in range(IN_FLIGHT)))
        return (time.process_time() - started) / calls * 1e6
    finally:
        await api.close()


async def main(calls: int, rounds: int) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        server = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "tests.saic_server", "--port", str(port), "--vehicles", "20", "--latency", "0"),
            *("--log", str(Path(folder) / "requests.json")),
        )
        try:
            await asyncio.to_thread(wait_for_port, port)
            figures: dict[str, list[float]] = {pool: [] for pool in POOLS}
            print(f"{calls} vehicle-status calls, {IN_FLIGHT} in flight; µs of this process's CPU per call")
            for round_ in range(1, rounds + 1):
                for pool in POOLS:
                    figures[pool].append(await cpu_per_call(port, pool, calls))
                library, sender = figures["library"][-1], figures["aiohttp"][-1]
                print(f"round {round_}: library's client {library:5.0f}   gateway's sender {sender:5.0f}")
            library, sender = (statistics.median(figures[pool]) for pool in POOLS)
            print(
                f"median:  library's client {library:5.0f}   gateway's sender {sender:5.0f}   ({sender / library:.2f}x)"
            )
        finally:
            server.terminate()
            await asyncio.wait_for(server.wait(), 10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    run(main(args.calls, args.rounds))
