"""The cyclic collector's pauses in every Python program a benchmark starts: put this folder on
`PYTHONPATH` and each program, at its exit, writes one line to `/tmp/collector-pauses.<pid>`: its
command, the milliseconds spent collecting, its full collections and the longest of them, and how
many objects `gc.freeze()` holds. Python imports `sitecustomize` at start-up by itself.

    PYTHONPATH=bench/collector_pauses .venv/bin/python -m bench.api --seconds 10 --clients 50 --websockets 10
    cat /tmp/collector-pauses.*
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import time
from typing import Any

_started = [0.0]
_total = [0.0]
_full: list[float] = []


def _time(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    pause = time.perf_counter() - _started[0]
    _total[0] += pause
    if info["generation"] == 2:
        _full.append(pause)


def _report() -> None:
    with open(f"/tmp/collector-pauses.{os.getpid()}", "w") as out:
        out.write(
            f"{' '.join(sys.argv)}: {_total[0] * 1000:.1f} ms collecting, {len(_full)} full collections"
            f" (longest {max(_full, default=0.0) * 1000:.1f} ms), {gc.get_freeze_count()} objects frozen\n"
        )


gc.callbacks.append(_time)
atexit.register(_report)
