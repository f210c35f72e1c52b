"""How many vehicles one gateway keeps on a 5 s cycle against a SAIC API that takes 300 ms per call.

Three processes: the SAIC wire-protocol test server (`python -m tests.saic_server`, a simulated
fleet behind it; every call waits `--latency` s), the gateway (`python -m gateway`, the real
saic-ismart-client-ng) and Mosquitto. For each fleet size it reports the gap between two polls of
the same car (p50 / p95 / max, from the server's request log) and the gateway process's CPU (% of
one core) and resident memory. The server and the gateway share this machine's two cores.

    .venv/bin/python -m bench.saic_gateway [--vehicles 100 400 800] [--latency 0.3] [--concurrency 50 500]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil

from bench.servers import ROOT, broker
from common.settings import MqttSettings
from local_stack.ports import free_port, wait_for_port

CYCLE = 5.0


async def measure(
    mqtt: MqttSettings, vehicles: int, latency: float, concurrency: int, window: float
) -> dict[str, float]:
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="bench-saic-")) / "requests.json"
    server = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tests.saic_server", "--port", str(port), "--vehicles", str(vehicles)),
        *("--latency", str(latency), "--log", str(log)),
        cwd=ROOT,
    )
    await asyncio.to_thread(wait_for_port, port)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MQTT_PORT": str(mqtt.port),
        "MQTT_GATEWAY_PASSWORD": mqtt.password_for("gateway"),
        "SAIC_USERNAME": "owner@example.com",
        "SAIC_PWD": "correct horse",
        "SAIC_BASE_URI": f"http://127.0.0.1:{port}/api.app/v1/",
        "SAIC_SMS_DELIVERY_DELAY": "0.05",
        "SAIC_RATE_LIMIT": "0",
        "GATEWAY_POLL_INTERVAL": str(CYCLE),
        "GATEWAY_POLL_CONCURRENCY": str(concurrency),
        "HA_DISCOVERY_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    gateway = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", env=env, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    try:
        process = psutil.Process(gateway.pid)
        await asyncio.sleep(3 * CYCLE)  # login, vehicle list, the first full cycle
        cpu_before, started = process.cpu_times(), time.monotonic()
        await asyncio.sleep(window)
        cpu_after, elapsed = process.cpu_times(), time.monotonic() - started
        rss = process.memory_info().rss
    finally:
        gateway.terminate()
        await asyncio.wait_for(gateway.wait(), 15)
        server.terminate()
        await asyncio.wait_for(server.wait(), 15)
    # Gaps between polls of the same car inside the measuring window (server clock = monotonic).
    recorded = json.loads(log.read_text())
    polls: dict[str, list[float]] = defaultdict(list)
    for vin_hash, at in recorded["polls"]:
        polls[vin_hash].append(at)
    window_start = max(times[-1] for times in polls.values()) - window
    gaps = sorted(b - a for times in polls.values() for a, b in itertools.pairwise(times) if a >= window_start)
    cpu = cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system
    return {
        "polled": sum(1 for times in polls.values() if times[-1] >= window_start),
        "p50": statistics.median(gaps) if gaps else float("nan"),
        "p95": gaps[int(len(gaps) * 0.95)] if gaps else float("nan"),
        "max": gaps[-1] if gaps else float("nan"),
        "cpu": cpu / elapsed * 100,
        "rss_mb": rss / 2**20,
        "signature_failures": recorded["signature_failures"],
    }


async def main(sizes: list[int], latency: float, concurrencies: list[int], window: float) -> None:
    print(f"SAIC API latency {latency * 1000:.0f} ms per call, target cycle {CYCLE:g} s, window {window:g} s")
    print(
        f"{'vehicles':>8} {'concurrency':>11} {'polled':>6} {'gap p50':>8} {'p95':>6} {'max':>6}"
        f" {'on 5 s?':>7} {'CPU %':>6} {'per 100':>7} {'RSS MB':>7}"
    )
    with broker("mosquitto") as mqtt:
        for concurrency in concurrencies:
            for vehicles in sizes:
                r = await measure(mqtt, vehicles, latency, concurrency, window)
                kept = r["polled"] == vehicles and r["p95"] <= CYCLE * 1.1
                print(
                    f"{vehicles:>8} {concurrency:>11} {r['polled']:>6.0f} {r['p50']:>7.2f}s"
                    f" {r['p95']:>5.2f}s {r['max']:>5.2f}s {'yes' if kept else 'no':>7}"
                    f" {r['cpu']:>5.0f}% {r['cpu'] * 100 / vehicles:>6.1f}% {r['rss_mb']:>7.1f}"
                    + (f"  ({r['signature_failures']:.0f} signature failures)" if r["signature_failures"] else ""),
                    flush=True,
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vehicles", type=int, nargs="+", default=[100, 200, 400, 800])
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--window", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(main(args.vehicles, args.latency, args.concurrency, args.window))
