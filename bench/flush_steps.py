"""Where a flush of many vehicles spends its time: each step of the PostgreSQL sink's flush, timed
by wrapping its functions (the states and the history run at once, so the steps overlap), and the
cyclic collector's pauses. `--statements`: each statement's time from send to answer instead
(asyncpg's query logger; it includes waiting for this process's event loop). `--before SQL`: run
SQL once the migrations are in, to measure the schema without something (a migration undone, a
constraint dropped).

    .venv/bin/python -m bench.flush_steps [--vehicles 10000] [--statements] [--before SQL]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench import run
from bench.ingest_throughput import STEADY_KEYS, T0, _full_vehicle, bench_vin
from bench.servers import postgres
from ingest import period_store, postgres_sink
from ingest.cache import TelemetryCache
from ingest.dead_letters import DeadLetters
from ingest.flusher import Flusher
from ingest.periods import PeriodSettings
from ingest.postgres_sink import PostgresSink
from ingest.spool import Spool

STEPS: dict[str, float] = defaultdict(float)
_COLLECTING_SINCE = [0.0]


def _collector(phase: str, _info: dict[str, int]) -> None:
    if phase == "start":
        _COLLECTING_SINCE[0] = time.perf_counter()
    else:
        STEPS["collector"] += time.perf_counter() - _COLLECTING_SINCE[0]


def _statement(record: asyncpg.connection.LoggedQuery) -> None:
    STEPS[" ".join(record.query.split()[:3])[:40]] += record.elapsed


def timed(owner: Any, name: str) -> None:
    """Replace `owner.name` with a copy that adds its wall time to STEPS[name]."""
    original: Callable[..., Any] = getattr(owner, name)

    if asyncio.iscoroutinefunction(original):

        @functools.wraps(original)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                STEPS[name] += time.perf_counter() - started

    else:

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                STEPS[name] += time.perf_counter() - started

    setattr(owner, name, wrapper)


async def main(vehicles: int, statements: bool, before: str | None) -> None:
    if not statements:
        timed(TelemetryCache, "take_changes")
        timed(postgres_sink, "plan_rows")
        timed(PostgresSink, "_write_states")
        timed(PostgresSink, "_write_history")
        timed(postgres_sink, "lock_and_read_states")
        timed(postgres_sink, "derive_following")  # while the history statement runs
        timed(period_store, "_write")
    gc.callbacks.append(_collector)
    print(f"flush of {vehicles} vehicles, derivation on; seconds per step (the states beside the history)")

    async def log_statements(conn: asyncpg.Connection) -> None:
        if statements:
            conn.add_query_logger(_statement)

    with postgres() as url:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=3, init=log_statements)
        sink = PostgresSink(pool, PeriodSettings.from_env({}))
        await sink.ready()
        if before:
            async with pool.acquire() as conn:
                await conn.execute(before)
        cache = TelemetryCache("saic")
        with tempfile.TemporaryDirectory() as spool:
            flusher = Flusher(cache, sink, Spool(Path(spool), 10**9), DeadLetters())
            rounds = (("cold start", None), ("full republish", None), *[("steady state", STEADY_KEYS)] * 3)
            for n, (name, keys) in enumerate(rounds):
                for v in range(vehicles):
                    for topic, payload in _full_vehicle(bench_vin(v), T0 + timedelta(minutes=n), keys):
                        cache.add(topic, payload)
                STEPS.clear()
                started = time.perf_counter()
                await flusher.flush()
                total = time.perf_counter() - started
                steps = "  ".join(f"{step} {seconds:.3f}" for step, seconds in STEPS.items())
                print(f"{name:15s} {total:.3f}  {steps}")
        await sink.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=10_000)
    parser.add_argument("--statements", action="store_true", help="time each SQL statement instead of each step")
    parser.add_argument("--before", metavar="SQL", help="run this once the migrations are applied")
    args = parser.parse_args()
    run(main(args.vehicles, args.statements, args.before))
