"""The least memory the stack's processes can take, as issue 12's idle-memory goal counts it (the
sum of every process's RSS): each Python program stood in for by an interpreter that has imported
only the libraries the program cannot work without and then sleeps, beside the real supervisord
(with one program, a `sleep`) and Mosquitto as `python -m broker` runs it. No settings, no
metrics, no uvloop, none of the project's own code: what is left is the floor under the
architecture of one process per program under supervisord, not under this implementation of it.

    .venv/bin/python -m bench.memory_floor
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from bench.servers import broker_process
from broker.mosquitto import find_mosquitto

GOAL_MIB = 150

# What each program does that it cannot do without: the MQTT client (paho, which imports ssl) for
# all of them, PostgreSQL (asyncpg) for the ingest and the API, an HTTP server for the API. The
# gateway is the local stack's, with simulated cars: no SAIC client.
FLOORS = {
    "gateway": ("asyncio", "paho.mqtt.client"),
    "ingest": ("asyncio", "paho.mqtt.client", "asyncpg", "orjson"),
    "command API": ("asyncio", "paho.mqtt.client", "asyncpg", "aiohttp.web"),
    "process monitor": ("sys",),
}
# What the programs add to their floors that the floor leaves out, each measured on the ingest's floor.
ADDITIONS = {
    "uvloop": ("uvloop",),
    "prometheus_client": ("prometheus_client",),
    "pydantic and the settings models": ("pydantic", "common.settings"),
}
SETTLE_S = 2.0


def _python_floor(modules: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-c", f"import signal, {', '.join(modules)}; print('ready', flush=True); signal.pause()"]


def _supervisord(folder: Path) -> list[str]:
    config = folder / "supervisord.conf"
    config.write_text(
        "[supervisord]\nnodaemon=true\nlogfile=/dev/null\nloglevel=warn\n"
        f"pidfile={folder}/supervisord.pid\n\n[program:sleep]\ncommand=sleep 600\n",
        encoding="utf-8",
    )
    return [sys.executable, "-m", "supervisor.supervisord", "-c", str(config)]


@contextlib.contextmanager
def _started(commands: dict[str, list[str]]) -> Iterator[dict[str, psutil.Popen]]:
    procs: dict[str, psutil.Popen] = {}
    try:
        for name, command in commands.items():
            procs[name] = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        yield procs
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(5)
            except psutil.TimeoutExpired:
                proc.kill()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as scratch:
        folder = Path(scratch)
        commands = {name: _python_floor(modules) for name, modules in FLOORS.items()}
        commands |= {name: _python_floor(FLOORS["ingest"] + modules) for name, modules in ADDITIONS.items()}
        commands["supervisord"] = _supervisord(folder)
        with contextlib.ExitStack() as stack:
            started = stack.enter_context(_started(commands))
            procs: dict[str, psutil.Process] = dict(started)
            if find_mosquitto() is not None:  # the stack's own, as `python -m broker` runs it
                procs["Mosquitto"] = psutil.Process(stack.enter_context(broker_process("mosquitto"))[1])
            for name, modules in (FLOORS | ADDITIONS).items():  # each says when its imports are done
                stdout = started[name].stdout
                assert stdout is not None
                if stdout.readline().strip() != b"ready":
                    sys.exit(f"the floor process of {name} failed to import {', '.join(modules)}")
            time.sleep(SETTLE_S)  # supervisord and Mosquitto up and idle
            rss = {name: proc.memory_info().rss / 2**20 for name, proc in procs.items()}
    added = {name: rss.pop(name) - rss["ingest"] for name in ADDITIONS}
    print("the least RSS each process of the stack can take (issue 12's idle memory), MiB:")
    for name, mib in sorted(rss.items(), key=lambda item: -item[1]):
        what = ", ".join(FLOORS[name]) if name in FLOORS else "the real program, idle"
        print(f"  {name:16s} {mib:6.1f}   {what}")
    if "Mosquitto" not in rss:
        print("  (Mosquitto is not installed: its 9 MiB are missing from the sum)")
    print("what a program adds to its floor by importing, MiB (measured on the ingest's):")
    for name, mib in added.items():
        print(f"  {mib:5.1f}  {name}")
    total = sum(rss.values())
    left = GOAL_MIB - total
    print(f"sum {total:.0f} MiB: {left:.0f} MiB of the goal's {GOAL_MIB} left for all that the programs add to it")


if __name__ == "__main__":
    main()
