"""How many vehicles one gateway keeps on a 5 s cycle against a SAIC API that takes 300 ms per call.

Three processes: the SAIC wire-protocol test server (`python -m tests.saic_server`, a simulated
fleet behind it; every call waits `--latency` s), the gateway (`python -m gateway`, the real
saic-ismart-client-ng) and Mosquitto. For each fleet size it reports the gap between two polls of
the same car (p50 / p95 / max, from the server's request log) and the gateway process's CPU (% of
one core), its resident memory, the connections it opened to the server over the whole run, its
start-up (until every car's first reading is on the broker) and, for the project's gateway, the cars
whose first poll failed. The server and the gateway share this machine's two cores. `--http-pool
aiohttp library` runs the gateway on each SAIC_HTTP_POOL in turn; `--set NAME=VALUE` gives it other
settings.

    .venv/bin/python -m bench.saic_gateway [--vehicles 100 400 800] [--latency 0.3] [--concurrency 50 500]
        [--http-pool aiohttp library]

Head to head with the upstream gateway (saic-python-mqtt-gateway): `--upstream SRC --upstream-python
PY` runs it too, after the project's, against the same server and fleet: SRC is its `src/` folder and
PY a Python with its dependencies (docs/benchmarks.md says how to set both up). Every car is set to
a 5 s period on both (upstream through its retained `refresh/period/*/set` topics), Home Assistant
discovery on, and each gateway's CPU is divided by the polls and by the SAIC requests it made.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import psutil

from bench import run
from bench.servers import ROOT, broker
from common import topics
from common.settings import MqttSettings
from gateway.simulator import simulated_vin
from local_stack.ports import free_port, wait_for_port

CYCLE = 5.0
ACCOUNT = "owner@example.com"  # the SAIC test server's default user
POOL_NAMES = {"aiohttp": "project", "library": "lib-pool"}  # SAIC_HTTP_POOL -> the run's name


def _client(mqtt: MqttSettings, user: str) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", mqtt.port, username=user, password=mqtt.password_for(user))


async def _retain_periods(mqtt: MqttSettings, vehicles: int, payload: bytes) -> None:
    """Upstream reads each car's polling periods from retained `set` topics (30 s active, a day
    inactive by default): every car to CYCLE, as the project's fleet profile does, or (b"") the
    topics cleared again, so that a later run of the project's gateway, which reads them too, does
    not find them."""
    root = f"{mqtt.topic_prefix}/{ACCOUNT}/vehicles"
    async with _client(mqtt, "gateway") as client:
        for n in range(1, vehicles + 1):
            for period in ("active", "inActive", "afterShutdown"):
                topic = f"{root}/{simulated_vin(n)}/refresh/period/{period}/set"
                await client.publish(topic, payload, qos=1, retain=True)


@dataclass
class StartUp:
    """When each car's first reading reached the broker, and which cars' first poll failed (their
    polling phase went to `error` before a reading; the project's gateway only)."""

    first_reading: dict[str, float] = field(default_factory=dict)
    failed_first: set[str] = field(default_factory=set)

    async def watch(self, mqtt: MqttSettings, subscribed: asyncio.Event) -> None:
        root = f"{mqtt.topic_prefix}/{ACCOUNT}/vehicles/"
        async with _client(mqtt, "ingest") as client:
            for topic in (topics.REFRESH_LAST_VEHICLE_STATE, topics.REFRESH_POLLING_PHASE):
                await client.subscribe(f"{root}+/{topic}", qos=1)
            subscribed.set()
            async for message in client.messages:
                if message.retain:
                    continue  # an earlier run's
                vin, topic = message.topic.value.removeprefix(root).split("/", 1)
                if topic == topics.REFRESH_LAST_VEHICLE_STATE:
                    self.first_reading.setdefault(vin, time.monotonic())
                elif message.payload == b"error" and vin not in self.first_reading:
                    self.failed_first.add(vin)


@dataclass(frozen=True)
class Upstream:
    src: Path
    python: Path


async def measure(
    mqtt: MqttSettings,
    vehicles: int,
    latency: float,
    concurrency: int,
    window: float,
    upstream: Upstream | None = None,
    discovery: bool = False,
    http_pool: str = "aiohttp",
    extra_env: dict[str, str] | None = None,
) -> dict[str, float]:
    """One gateway against a fleet of its own: the project's, or upstream's when `upstream` is given."""
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
        "SAIC_USERNAME": ACCOUNT,
        "SAIC_PWD": "correct horse",
        "SAIC_BASE_URI": f"http://127.0.0.1:{port}/api.app/v1/",
        "SAIC_SMS_DELIVERY_DELAY": "0.05",
        "SAIC_RATE_LIMIT": "0",
        "SAIC_HTTP_POOL": http_pool,
        "GATEWAY_POLL_INTERVAL": str(CYCLE),
        "GATEWAY_POLL_CONCURRENCY": str(concurrency),
        "HA_DISCOVERY_ENABLED": str(discovery).lower(),
        # Nobody reads the logs here; upstream warns on each poll of a model it has no battery size for.
        "LOG_LEVEL": "ERROR",
    } | (extra_env or {})
    command: list[str | Path] = [sys.executable, "-m", "gateway"]
    if upstream is not None:
        await _retain_periods(mqtt, vehicles, str(int(CYCLE)).encode())
        command = [upstream.python, upstream.src / "main.py"]
        env |= {
            "SAIC_USER": env["SAIC_USERNAME"],
            "SAIC_PASSWORD": env["SAIC_PWD"],
            "SAIC_REST_URI": env["SAIC_BASE_URI"],
            "MQTT_URI": f"tcp://127.0.0.1:{mqtt.port}",
            "MQTT_USER": "gateway",
            "MQTT_PASSWORD": mqtt.password_for("gateway"),
            "MQTT_LOG_LEVEL": "ERROR",
        }
    start_up, subscribed = StartUp(), asyncio.Event()
    watcher = asyncio.create_task(start_up.watch(mqtt, subscribed))
    await subscribed.wait()
    spawned = time.monotonic()
    with (log.parent / "gateway.log").open("wb") as output:  # errors only: see LOG_LEVEL
        gateway = await asyncio.create_subprocess_exec(
            *command, env=env, cwd=upstream.src if upstream else ROOT, stdout=output, stderr=output
        )
    try:
        process = psutil.Process(gateway.pid)
        await asyncio.sleep(3 * CYCLE)  # login, vehicle list, the first full cycle
        cpu_before, started = process.cpu_times(), time.monotonic()
        await asyncio.sleep(window)
        cpu_after, elapsed = process.cpu_times(), time.monotonic() - started
        rss = process.memory_info().rss
    finally:
        watcher.cancel()
        gateway.terminate()
        await asyncio.wait_for(gateway.wait(), 15)
        server.terminate()
        await asyncio.wait_for(server.wait(), 15)
        if upstream is not None:
            await _retain_periods(mqtt, vehicles, b"")
    # Gaps between polls of the same car inside the measuring window (server clock = monotonic).
    recorded = json.loads(log.read_text())
    polls: dict[str, list[float]] = defaultdict(list)
    for vin_hash, at in recorded["polls"]:
        polls[vin_hash].append(at)
    # No poll at all (upstream at 1,000 cars): nothing falls in the window, and the figures are NaN.
    window_start = max((times[-1] for times in polls.values()), default=math.inf) - window
    gaps = sorted(b - a for times in polls.values() for a, b in itertools.pairwise(times) if a >= window_start)
    cpu = cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system
    polls_in_window = sum(1 for times in polls.values() for at in times if at >= window_start)
    requests_in_window = sum(1 for at in recorded["requests"] if at >= window_start)
    return {
        "cpu_ms_per_poll": cpu * 1000 / polls_in_window if polls_in_window else math.nan,
        "cpu_ms_per_request": cpu * 1000 / requests_in_window if requests_in_window else math.nan,
        "polled": sum(1 for times in polls.values() if times[-1] >= window_start),
        "p50": statistics.median(gaps) if gaps else float("nan"),
        "p95": gaps[int(len(gaps) * 0.95)] if gaps else float("nan"),
        "max": gaps[-1] if gaps else float("nan"),
        "cpu": cpu / elapsed * 100,
        "rss_mb": rss / 2**20,
        "signature_failures": recorded["signature_failures"],
        "connections": recorded["connections"],
        # Until every car's first reading was published (NaN when some car had none).
        "start_up": max(start_up.first_reading.values()) - spawned
        if len(start_up.first_reading) == vehicles
        else math.nan,
        "failed_first": len(start_up.failed_first),
    }


async def main(
    sizes: list[int],
    latency: float,
    concurrencies: list[int],
    window: float,
    upstream: Upstream | None,
    http_pools: list[str],
    extra_env: dict[str, str],
) -> None:
    print(f"SAIC API latency {latency * 1000:.0f} ms per call, target cycle {CYCLE:g} s, window {window:g} s")
    print(
        f"{'gateway':>8} {'vehicles':>8} {'concurrency':>11} {'polled':>6} {'gap p50':>8} {'p95':>6} {'max':>6}"
        f" {'on 5 s?':>7} {'CPU %':>6} {'per 100':>7} {'ms/poll':>7} {'ms/call':>7} {'RSS MB':>7} {'conns':>6}"
        f" {'start-up':>8} {'failed 1st':>10}"
    )
    with broker("mosquitto") as mqtt:
        for concurrency in concurrencies:
            for vehicles in sizes:
                runs = {
                    POOL_NAMES[pool]: await measure(
                        mqtt, vehicles, latency, concurrency, window, None, bool(upstream), pool, extra_env
                    )
                    for pool in http_pools
                }
                if upstream is not None:
                    runs["upstream"] = await measure(mqtt, vehicles, latency, concurrency, window, upstream, True)
                for name, r in runs.items():
                    kept = r["polled"] == vehicles and r["p95"] <= CYCLE * 1.1
                    print(
                        f"{name:>8} {vehicles:>8} {concurrency if name != 'upstream' else '-':>11}"
                        f" {r['polled']:>6.0f} {r['p50']:>7.2f}s {r['p95']:>5.2f}s {r['max']:>5.2f}s"
                        f" {'yes' if kept else 'no':>7} {r['cpu']:>5.0f}% {r['cpu'] * 100 / vehicles:>6.1f}%"
                        f" {r['cpu_ms_per_poll']:>7.2f} {r['cpu_ms_per_request']:>7.2f} {r['rss_mb']:>7.1f}"
                        f" {r['connections']:>6.0f} {r['start_up']:>7.1f}s"
                        f" {r['failed_first'] if name != 'upstream' else '-':>10}"
                        + (f"  ({r['signature_failures']:.0f} signature failures)" if r["signature_failures"] else ""),
                        flush=True,
                    )
                if len(http_pools) == 2:
                    ours, library = runs[POOL_NAMES["aiohttp"]], runs[POOL_NAMES["library"]]
                    print(
                        f"{'':>8} aiohttp's pool / the library's: CPU per poll"
                        f" {ours['cpu_ms_per_poll'] / library['cpu_ms_per_poll']:.2f}x"
                    )
                if upstream is not None and "aiohttp" in http_pools:
                    ours, theirs = runs["project"], runs["upstream"]
                    cpu = (
                        f"CPU per poll {ours['cpu_ms_per_poll'] / theirs['cpu_ms_per_poll']:.2f}x, per SAIC call"
                        f" {ours['cpu_ms_per_request'] / theirs['cpu_ms_per_request']:.2f}x"
                        if theirs["polled"]
                        else "upstream polled no car in the window"
                    )
                    print(f"{'':>8} project / upstream: {cpu}, memory {ours['rss_mb'] / theirs['rss_mb']:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vehicles", type=int, nargs="+", default=[100, 200, 400, 800])
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument(
        "--http-pool",
        nargs="+",
        choices=list(POOL_NAMES),
        default=["aiohttp"],
        help="the project's gateway on each SAIC_HTTP_POOL in turn (both: a ratio)",
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="settings for the project's gateway, e.g. SAIC_SCHEDULE_REFRESH=0 (upstream's every poll)",
    )
    parser.add_argument("--upstream", type=Path, help="upstream's src/ folder: run it too, head to head")
    parser.add_argument("--upstream-python", type=Path, help="a Python with upstream's dependencies")
    args = parser.parse_args()
    if (args.upstream is None) != (args.upstream_python is None):
        parser.error("--upstream and --upstream-python go together")
    upstream = Upstream(args.upstream, args.upstream_python) if args.upstream else None
    if any("=" not in setting for setting in args.set):
        parser.error("--set takes NAME=VALUE")
    extra_env = dict(setting.split("=", 1) for setting in args.set)
    run(main(args.vehicles, args.latency, args.concurrency, args.window, upstream, args.http_pool, extra_env))
