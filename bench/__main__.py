"""`python -m bench` (or `scripts/bench`): the scorecard. Every figure issue 12 sets a goal for, one
line each: the value, its baseline measured in the same run (where one exists), the ratio, the goal
and whether it is met. About seven minutes on a 2-core machine; each part is its own benchmark too
(`python -m bench.<name> --help`).

    .venv/bin/python -m bench [--skip stack,ingest]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import time
import timeit
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bench import api, broker_throughput, ingest_throughput, lock_latency, run, saic_gateway, stack
from bench.servers import ROOT, broker, postgres
from bench.stats import percentile
from common.lifecycle import event_loop_name
from gateway.settings import GatewaySettings

LOCK_REQUESTS = 300
BROKER_MESSAGES = 20_000
FLEET_SIZES = (1_000, 10_000)
SAIC_CARS, SAIC_LATENCY = 1_000, 0.05
"""The gateway's goals: this many cars on the 5 s cycle, each SAIC call answered after this many seconds."""


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    goal: str
    met: bool
    baseline: float | None = None
    baseline_name: str = ""
    note: str = ""

    def line(self) -> str:
        value = f"{self.value:,.{_decimals(self.value)}f} {self.unit}"
        if self.baseline is None:
            baseline = ratio = "-"
        else:
            baseline = f"{self.baseline:,.{_decimals(self.baseline)}f} ({self.baseline_name})"
            ratio = f"{self.value / self.baseline:.2f}x" if self.baseline else "-"
        verdict = "met" if self.met else "NOT MET"
        note = f"  ({self.note})" if self.note else ""
        return f"{self.name:46} {value:>16}  {baseline:>40}  {ratio:>7}  {self.goal:>26}  {verdict}{note}"


def _decimals(value: float) -> int:
    return 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2


HEADER = f"{'figure':46} {'value':>16}  {'baseline, same run':>40}  {'ratio':>7}  {'goal':>26}"


async def lock_figures() -> AsyncIterator[Figure]:
    for implementation in ("mosquitto", "amqtt"):
        echo = await lock_latency.mqtt_echo_round_trips(LOCK_REQUESTS, implementation)
        lock = await lock_latency.lock_round_trips(LOCK_REQUESTS, implementation)
        wire, name = "bare QoS 1 round trip", f"sequential lock, {implementation}"
        p50, p99 = statistics.median(lock), percentile(lock, 0.99)
        yield Figure(f"{name}, p50", p50, "ms", "< 5 ms", p50 < 5, statistics.median(echo), wire)
        yield Figure(f"{name}, p99", p99, "ms", "< 15 ms", p99 < 15, percentile(echo, 0.99), wire)


async def api_figures() -> AsyncIterator[Figure]:
    figures = await api.measure(seconds=10, clients=50, websockets=0)
    p50, p99 = statistics.median(figures.commands), percentile(figures.commands, 0.99)
    hops = "the hops alone"  # bench.bare_command: no database, a responder for the car
    floor50, floor99 = statistics.median(figures.floor), percentile(figures.floor, 0.99)
    yield Figure("commands, 50 concurrent clients, p50", p50, "ms", "< 20 ms", p50 < 20, floor50, hops)
    yield Figure("commands, 50 concurrent clients, p99", p99, "ms", "< 50 ms", p99 < 50, floor99, hops)
    ratio = figures.api_reads / figures.bare_reads
    reads, bare = figures.api_reads, figures.bare_reads
    yield Figure("GET /api/vehicles/{vin}", reads, "req/s", ">= 0.7x", ratio >= 0.7, bare, "bare handler")


async def ingest_figures() -> AsyncIterator[Figure]:
    readings, vehicles = 25_000, 500
    with broker("mosquitto") as mqtt, postgres() as url:
        _publisher, bare = await ingest_throughput.bare_subscriber(mqtt, readings, vehicles)
        _received, rows = await ingest_throughput.ingest_rate(mqtt, url, readings, vehicles)
    end_to_end = rows * ingest_throughput.MESSAGES_PER_READING
    yield Figure(
        "ingest, messages to rows committed",
        end_to_end,
        "msg/s",
        ">= 0.8x and >= 40,000",
        end_to_end >= 0.8 * bare and end_to_end >= 40_000,
        bare,
        "bare subscriber",
    )
    with postgres() as url:
        plain = await ingest_throughput.flush_of(url, 10_000, derive=False)
    with postgres() as url:
        derived = await ingest_throughput.flush_of(url, 10_000)
    off = "derivation off"
    cold, steady = derived[0], derived[2]
    yield Figure("flush of 10,000 vehicles, cold start", cold, "s", "< 1 s", cold < 1, plain[0], off)
    yield Figure("flush of 10,000 vehicles, steady state", steady, "s", "< 0.5 s", steady < 0.5, plain[2], off)


async def gateway_figures() -> AsyncIterator[Figure]:
    """The gateway against the SAIC test server, at its default ceiling of polls in flight. Against
    upstream's gateway (the CPU goals) it needs upstream's source: `python -m bench.saic_gateway --upstream`."""
    ceiling = GatewaySettings.from_env({}).poll_concurrency
    with broker("mosquitto") as mqtt:
        gateway = await saic_gateway.measure(mqtt, SAIC_CARS, SAIC_LATENCY, ceiling, window=20)
    cars = f"SAIC gateway, {SAIC_CARS:,} cars"
    start_up, failed = gateway["start_up"], int(gateway["failed_first"])
    yield Figure(f"{cars}: start-up", start_up, "s", "< 5 s, 0 failed first polls", start_up < 5 and not failed)
    holds = gateway["polled"] == SAIC_CARS and gateway["p95"] <= 1.1 * saic_gateway.CYCLE
    cpu = gateway["cpu"]
    yield Figure(f"{cars} at 5 s: CPU", cpu, "% of a core", "< 50 %, cycle held", cpu < 50 and holds)


async def broker_figures() -> AsyncIterator[Figure]:
    delivered = {}
    for implementation in ("mosquitto", "amqtt"):
        with broker(implementation) as settings:
            _rate, delivered[implementation] = await broker_throughput.measure(settings, 1, BROKER_MESSAGES)
    yield Figure(
        f"amqtt: QoS 1 messages delivered of {BROKER_MESSAGES:,}",
        delivered["amqtt"],
        "",
        "all",
        delivered["amqtt"] == BROKER_MESSAGES,
        delivered["mosquitto"],
        "Mosquitto",
    )


async def stack_figures() -> AsyncIterator[Figure]:
    startup, memory = await stack.idle()
    yield Figure("start-up: scripts/run to /api/health 200", startup, "s", "< 5 s", startup < 5)
    rss, pss = sum(mib.rss for mib in memory.values()), sum(mib.pss for mib in memory.values())
    pss_note = f"PSS, shared pages once: {pss:.0f} MiB"
    yield Figure("idle memory (RSS), all programs, 3 cars", rss, "MiB", "< 150 MiB", rss < 150, note=pss_note)
    largest = 0
    for vehicles in FLEET_SIZES:
        if not (await stack.fleet(vehicles, window=40)).holds:
            break
        largest = vehicles
    yield Figure("largest fleet holding the 5 s cycle", largest, "cars", ">= 10,000", largest >= 10_000)


PARTS: dict[str, Callable[[], AsyncIterator[Figure]]] = {
    "lock": lock_figures,
    "api": api_figures,
    "ingest": ingest_figures,
    "broker": broker_figures,
    "gateway": gateway_figures,
    "stack": stack_figures,
}


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (" (uncommitted changes)" if git("status", "--porcelain") else "")


def machine_speed() -> float:
    """µs for one fixed piece of pure Python, best of five: the shared VM's speed varies several-fold
    from day to day, and this says which kind of day a scorecard was taken on."""
    return min(timeit.repeat("sum(range(10000))", number=200, repeat=5)) / 200 * 1e6


async def main(skip: set[str]) -> None:
    started = time.perf_counter()
    print(
        f"scorecard, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {_commit()}, Python {platform.python_version()}, "
        f"event loop {event_loop_name()}"
    )
    print(f"machine: sum(range(10000)) takes {machine_speed():.0f} µs (compare scorecards only at a like speed)")
    print(HEADER)
    for name, part in PARTS.items():
        if name in skip:
            continue
        async for figure in part():
            print(figure.line(), flush=True)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", default="", help=f"parts to leave out, comma-separated: {', '.join(PARTS)}")
    args = parser.parse_args()
    run(main({part for part in args.skip.split(",") if part}))
