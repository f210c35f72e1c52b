"""`python -m process_monitor`: supervisord's event listener (the `[eventlistener]` in supervisord.conf).

- PROCESS_STATE_FATAL (a program gave up after its start retries): write `$RUNTIME_DIR/fatal`, log
  CRITICAL, alert, and stop supervisord; `scripts/entrypoint` then exits 1 so Cloud Run replaces
  the container instead of keeping one that silently lacks a program.
- PROCESS_STATE_EXITED unexpectedly `RESTART_ALERT_COUNT` times within `RESTART_ALERT_WINDOW` s:
  alert once; TICK_60 clears the alert when the program has been quiet for the window.

stdout is the event protocol, so logs go to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

from pydantic import Field

from common.alerts import Alerts, AlertSettings
from common.logging import setup_logging
from common.settings import EnvSettings
from process_monitor.restarts import RestartTracker

log = logging.getLogger("process_monitor")


class MonitorSettings(EnvSettings):
    runtime_dir: Path = Field(Path("/tmp"), alias="RUNTIME_DIR")  # noqa: S108 - supervisord.conf sets it
    restart_count: int = Field(3, alias="RESTART_ALERT_COUNT", ge=1)
    restart_window: float = Field(300.0, alias="RESTART_ALERT_WINDOW", gt=0)


def parse_tokens(line: str) -> dict[str, str]:
    """`key:value key:value ...`, supervisord's header and payload format."""
    return dict(token.split(":", 1) for token in line.split() if ":" in token)


class Monitor:
    def __init__(self, settings: MonitorSettings, alerts: Alerts) -> None:
        self.settings = settings
        self.alerts = alerts
        self.restarts = RestartTracker(settings.restart_count, settings.restart_window)

    def handle(self, event: str, payload: str) -> None:
        fields = parse_tokens(payload.split("\n", 1)[0])
        program = fields.get("processname", "?")
        now = time.monotonic()
        if event == "PROCESS_STATE_FATAL":
            self._fatal(program)
        elif event == "PROCESS_STATE_EXITED" and fields.get("expected") == "0":
            count = self.restarts.exited(program, now)
            log.warning("%s exited unexpectedly (%d in the last %.0fs)", program, count, self.restarts.window)
            if self.restarts.restarting(program, now):
                message = f"{program} exited unexpectedly {count} times in {self.restarts.window:.0f}s"
                asyncio.run(self.alerts.fire(f"restarts:{program}", message))
        elif event.startswith("TICK"):
            for name in self.restarts.programs():
                if f"restarts:{name}" in self.alerts.active and not self.restarts.restarting(name, now):
                    asyncio.run(self.alerts.clear(f"restarts:{name}", f"{name} runs steadily again"))

    def _fatal(self, program: str) -> None:
        marker = self.settings.runtime_dir / "fatal"
        marker.write_text(program + "\n", encoding="utf-8")
        log.critical("%s could not be started (FATAL): stopping the container", program)
        asyncio.run(self.alerts.fire(f"fatal:{program}", f"{program} could not be started; the container stops"))
        os.kill(os.getppid(), signal.SIGTERM)  # supervisord stops the others in order, then exits


def serve(monitor: Monitor, stdin: TextIO, stdout: TextIO) -> None:
    while True:
        stdout.write("READY\n")
        stdout.flush()
        header_line = stdin.readline()
        if not header_line:
            return  # supervisord went away
        header = parse_tokens(header_line)
        payload = stdin.read(int(header.get("len", "0")))
        try:
            monitor.handle(header.get("eventname", ""), payload)
        except Exception:
            log.exception("could not handle %s", header.get("eventname"))
        stdout.write("RESULT 2\nOK")
        stdout.flush()


def main() -> None:
    setup_logging("process_monitor", os.environ.get("LOG_LEVEL", "INFO"), stream=sys.stderr)
    settings = MonitorSettings.from_env()
    monitor = Monitor(settings, Alerts("process_monitor", AlertSettings.from_env()))
    serve(monitor, sys.stdin, sys.stdout)


if __name__ == "__main__":
    main()
