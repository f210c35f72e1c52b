"""`python -m process_monitor`: supervisord's event listener (the `[eventlistener]` in supervisord.conf).

- PROCESS_STATE_FATAL (a program gave up after its start retries): write `$RUNTIME_DIR/fatal`, log
  CRITICAL, alert, and stop supervisord; `scripts/entrypoint` then exits 1 so Cloud Run replaces
  the container instead of keeping one that silently lacks a program.
- PROCESS_STATE_EXITED unexpectedly `RESTART_ALERT_COUNT` times within `RESTART_ALERT_WINDOW` s:
  alert once; TICK_60 clears the alert when the program has been quiet for the window.

stdout is the event protocol, so logs go to stderr.

It loads neither pydantic, the alerts module nor asyncio until an alert is due: every Python process
counts toward the idle memory (issue 12), and those cost this one 20 of its 34 MiB. So its three
settings are read here by hand; the other programs validate the alert settings at their start.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from common.logging import setup_logging
from process_monitor.restarts import RestartTracker

if TYPE_CHECKING:
    from common.alerts import Alerts

log = logging.getLogger("process_monitor")


@dataclass(frozen=True)
class MonitorSettings:
    runtime_dir: Path = Path("/tmp")  # noqa: S108 - supervisord.conf sets it
    restart_count: int = 3
    restart_window: float = 300.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> MonitorSettings:
        """Raises ValueError naming the variable that is wrong."""
        defaults = cls()
        count = _number(environ, "RESTART_ALERT_COUNT", int, defaults.restart_count)
        window = _number(environ, "RESTART_ALERT_WINDOW", float, defaults.restart_window)
        if count < 1:
            raise ValueError(f"RESTART_ALERT_COUNT must be at least 1, not {count}")
        if not 0 < window < math.inf:
            raise ValueError(f"RESTART_ALERT_WINDOW must be a number of seconds above 0, not {window:g}")
        return cls(Path(environ.get("RUNTIME_DIR") or defaults.runtime_dir), count, window)


def _number[N: (int, float)](environ: Mapping[str, str], name: str, kind: type[N], default: N) -> N:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a {'whole ' if kind is int else ''}number, not {raw!r}") from None


def deliver(alert: Coroutine[Any, Any, None]) -> None:
    import asyncio  # asyncio alone is 8 MiB: loaded with the first alert

    asyncio.run(alert)


def load_alerts() -> Alerts:
    from common.alerts import Alerts, AlertSettings  # only when an alert is due

    return Alerts("process_monitor", AlertSettings.from_env())


def parse_tokens(line: str) -> dict[str, str]:
    """`key:value key:value ...`, supervisord's header and payload format."""
    return dict(token.split(":", 1) for token in line.split() if ":" in token)


class Monitor:
    def __init__(self, settings: MonitorSettings, alerts: Callable[[], Alerts] = load_alerts) -> None:
        self.settings = settings
        self._load_alerts = alerts
        self._alerts: Alerts | None = None
        self.restarts = RestartTracker(settings.restart_count, settings.restart_window)

    @property
    def alerts(self) -> Alerts:
        if self._alerts is None:
            self._alerts = self._load_alerts()
        return self._alerts

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
                deliver(self.alerts.fire(f"restarts:{program}", message))
        elif event.startswith("TICK"):
            active = self._alerts.active if self._alerts is not None else {}
            for name in self.restarts.programs():
                if f"restarts:{name}" in active and not self.restarts.restarting(name, now):
                    deliver(self.alerts.clear(f"restarts:{name}", f"{name} runs steadily again"))

    def _fatal(self, program: str) -> None:
        marker = self.settings.runtime_dir / "fatal"
        marker.write_text(program + "\n", encoding="utf-8")
        log.critical("%s could not be started (FATAL): stopping the container", program)
        deliver(self.alerts.fire(f"fatal:{program}", f"{program} could not be started; the container stops"))
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


def main() -> int:
    setup_logging("process_monitor", os.environ.get("LOG_LEVEL", "INFO"), stream=sys.stderr)
    try:
        settings = MonitorSettings.from_env()
    except ValueError as exc:
        log.critical("cannot start the process monitor: %s", exc)
        return 2
    serve(Monitor(settings), sys.stdin, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
