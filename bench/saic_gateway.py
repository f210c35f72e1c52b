"""How many vehicles one gateway keeps on a 5 s cycle against a SAIC API that takes 300 ms per call.

The gateway runs as its own process (`python -m gateway`, the real saic-ismart-client-ng) against the
SAIC wire-protocol test server (tests/saic_server.py) in this process; each status and charging
call waits `--latency` seconds on the server. For each fleet size it reports the gap between two
polls of the same car (p50 / p95 / max, from the server's request log) and the gateway process's
CPU and resident memory, per 100 vehicles. The server shares the machine's cores with the gateway.

    .venv/bin/python -m bench.saic_gateway [--vehicles 100 400 800] [--latency 0.3] [--concurrency 50 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict

import psutil

from bench.servers import ROOT, broker
from common.settings import MqttSettings
from gateway.simulator import SimulatedFleet
from tests.saic_server import SaicTestServer

CYCLE = 5.0


def gateway_env(mqtt: MqttSettings, server: SaicTestServer, concurrency: int) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MQTT_PORT": str(mqtt.port),
        "MQTT_GATEWAY_PASSWORD": mqtt.password_for("gateway"),
        **server.env(),
        "SAIC_READ_TIMEOUT": "10",
        "SAIC_RATE_LIMIT": "0",
        "GATEWAY_POLL_INTERVAL": str(CYCLE),
        "GATEWAY_POLL_CONCURRENCY": str(concurrency),
        "HA_DISCOVERY_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }


async def measure(
    mqtt: MqttSettings, vehicles: int, latency: float, concurrency: int, window: float
) -> dict[str, float]:
    server = SaicTestServer(SimulatedFleet(vehicles, seed=1, command_latency=0), latency=latency)
    await server.start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", env=gateway_env(mqtt, server, concurrency), cwd=ROOT, stdout=subprocess.DEVNULL
    )
    try:
        gateway = psutil.Process(proc.pid)
        await asyncio.sleep(2 * CYCLE)  # login, vehicle list, first full cycle
        cpu_before, started = gateway.cpu_times(), time.monotonic()
        first_request = len(server.requests)
        await asyncio.sleep(window)
        cpu_after, elapsed = gateway.cpu_times(), time.monotonic() - started
        rss = gateway.memory_info().rss
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
        await server.stop()
    polls: dict[str, list[float]] = defaultdict(list)
    for request in server.requests[first_request:]:
        if request.path.startswith("/vehicle/status"):
            polls[request.path].append(request.at)
    gaps = sorted(b - a for times in polls.values() for a, b in itertools.pairwise(times))
    cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / elapsed
    return {
        "polled": len(polls),
        "p50": statistics.median(gaps) if gaps else float("nan"),
        "p95": gaps[int(len(gaps) * 0.95)] if gaps else float("nan"),
        "max": gaps[-1] if gaps else float("nan"),
        "cpu_per_100": cpu * 100 / vehicles * 100,
        "rss_mb": rss / 2**20,
    }


async def main(sizes: list[int], latency: float, concurrencies: list[int], window: float) -> None:
    print(f"SAIC API latency {latency * 1000:.0f} ms per call, target cycle {CYCLE:g} s, window {window:g} s")
    print(
        f"{'vehicles':>8} {'concurrency':>11} {'polled':>6} {'gap p50':>8} {'p95':>6} {'max':>6}"
        f" {'on 5 s?':>7} {'CPU %/100 cars':>14} {'RSS MB':>7}"
    )
    with broker("mosquitto") as mqtt:
        for concurrency in concurrencies:
            for vehicles in sizes:
                r = await measure(mqtt, vehicles, latency, concurrency, window)
                kept = r["polled"] == vehicles and r["p95"] <= CYCLE * 1.1
                print(
                    f"{vehicles:>8} {concurrency:>11} {r['polled']:>6.0f} {r['p50']:>7.2f}s"
                    f" {r['p95']:>5.2f}s {r['max']:>5.2f}s {'yes' if kept else 'no':>7}"
                    f" {r['cpu_per_100']:>13.1f}% {r['rss_mb']:>7.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vehicles", type=int, nargs="+", default=[100, 400, 800])
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[50, 1000])
    parser.add_argument("--window", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(main(args.vehicles, args.latency, args.concurrency, args.window))
