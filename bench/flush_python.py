"""The Python side of a steady 10,000-vehicle flush, with no database: taking the changes from the
cache, planning the rows, their columns and JSON, and the derivation of drives, charges and parks
from each car's stored state (parsed from JSON, as the sink reads it, and written back), with the
cyclic collector paused as the Flusher pauses it. Process CPU time, the best of six steady flushes,
so that a change to this code can be measured on its own.

    .venv/bin/python -m bench.flush_python [--vehicles 10000]
"""

from __future__ import annotations

import argparse
import itertools
import time
from datetime import timedelta

import orjson

from bench.ingest_throughput import STEADY_KEYS, T0, _full_vehicle, bench_vin
from ingest.cache import TelemetryCache
from ingest.flusher import collector_paused
from ingest.period_store import derive_following, derived_batch, readings_by_vehicle
from ingest.periods import PeriodSettings
from ingest.postgres_sink import state_arguments, telemetry_arguments
from ingest.rows import dumps, plan_rows

STEPS = ("take", "plan", "columns and JSON", "derive", "whole")


def main(vehicles: int) -> None:
    settings = PeriodSettings.from_env({})
    cache = TelemetryCache("saic")
    stored: dict[str, str] = {}
    best = dict.fromkeys(STEPS, float("inf"))
    for flush in range(8):
        for v in range(vehicles):
            for topic, payload in _full_vehicle(
                bench_vin(v), T0 + timedelta(minutes=flush), STEADY_KEYS if flush else None
            ):
                cache.add(topic, payload)
        with collector_paused():  # as the Flusher runs a flush
            marks = [time.process_time()]
            snapshots = cache.take_changes()
            marks.append(time.process_time())
            rows = plan_rows(snapshots)
            marks.append(time.process_time())
            state_arguments(rows)
            telemetry_arguments(rows)
            marks.append(time.process_time())
            engines, _rewind = derive_following(settings, stored, readings_by_vehicle(rows.telemetry))
            batch = derived_batch(settings, engines, rows.capacities)
            stored = {vin: dumps(state.to_json()) for vin, state in batch.states.items()}
            marks.append(time.process_time())
        if flush >= 2:  # the cold start and the first derivation are not steady
            spans = [b - a for a, b in itertools.pairwise(marks)] + [marks[-1] - marks[0]]
            best = {step: min(best[step], span) for step, span in zip(STEPS, spans, strict=True)}
    assert orjson.loads(next(iter(stored.values())))["last"] is not None
    print(f"Python of a steady flush of {vehicles} vehicles, best of six (ms of CPU):")
    print("  ".join(f"{step} {seconds * 1000:.0f}" for step, seconds in best.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=10_000)
    main(parser.parse_args().vehicles)
