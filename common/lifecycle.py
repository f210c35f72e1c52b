"""Process entry-point plumbing shared by every program: logging, settings errors, SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

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


def run_program(component: str, main: Callable[[asyncio.Event], Awaitable[None]], log_level: str = "INFO") -> None:
    """Run `main(stop)` until it returns; exit 2 with one clear line on a configuration error."""
    setup_logging(component, log_level)

    async def runner() -> None:
        await main(stop_event_on_signals())

    try:
        asyncio.run(runner())
    except SettingsError as exc:
        log.critical("%s", exc)
        sys.exit(EXIT_CONFIG_ERROR)
    log.info("%s stopped", component)
