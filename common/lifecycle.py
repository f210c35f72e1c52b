"""Process entry-point plumbing shared by every program: logging, settings errors, SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping

from common.logging import setup_logging
from common.settings import SettingsError

log = logging.getLogger(__name__)

EXIT_CONFIG_ERROR = 2


def stop_event_on_signals() -> asyncio.Event:
    """An event set by SIGTERM (supervisord, Cloud Run) or SIGINT (Ctrl-C)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


EVENT_LOOPS = ("uvloop", "asyncio")


def event_loop_name(environ: Mapping[str, str] = os.environ) -> str:
    """`EVENT_LOOP`, checked: uvloop unless it names another of EVENT_LOOPS."""
    name = environ.get("EVENT_LOOP", "").strip().lower() or EVENT_LOOPS[0]
    if name not in EVENT_LOOPS:
        raise SettingsError(f"EVENT_LOOP must be one of {', '.join(EVENT_LOOPS)}, not {name!r}")
    return name


def event_loop_factory(environ: Mapping[str, str] = os.environ) -> Callable[[], asyncio.AbstractEventLoop]:
    """The programs' event loop: uvloop (libuv), unless `EVENT_LOOP=asyncio` asks for the standard
    library's. Under the 50-client command load uvloop took a fifth off the API's and the gateway's
    CPU per command (docs/benchmarks.md); the standard loop stays one setting away, for debugging."""
    if event_loop_name(environ) == "asyncio":
        return asyncio.new_event_loop
    import uvloop  # only where it is wanted

    return uvloop.new_event_loop


def run_program(component: str, main: Callable[[asyncio.Event], Awaitable[None]], log_level: str = "INFO") -> None:
    """Run `main(stop)` until it returns; exit 2 with one clear line on a configuration error."""
    setup_logging(component, log_level)

    async def runner() -> None:
        await main(stop_event_on_signals())

    # What the imports built lives as long as the program: frozen, a full collection no longer
    # walks it (57,000 objects in the API; its full collection under load, 48 -> 39 ms).
    gc.freeze()
    try:
        asyncio.run(runner(), loop_factory=event_loop_factory())
    except SettingsError as exc:
        log.critical("%s", exc)
        sys.exit(EXIT_CONFIG_ERROR)
    log.info("%s stopped", component)
