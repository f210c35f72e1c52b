"""Benchmarks (docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from common.lifecycle import event_loop_factory


def run[T](main: Coroutine[Any, Any, T]) -> T:
    """Run a benchmark on the programs' own event loop (uvloop; `EVENT_LOOP=asyncio` for the
    standard library's), so that what runs in this process measures as it runs deployed."""
    return asyncio.run(main, loop_factory=event_loop_factory())
