"""The whole stack as `scripts/run` starts it (its own PostgreSQL, supervisord, Mosquitto, gateway,
ingest, API, process monitor), each run in a scratch data folder on free ports:

- start-up: from `scripts/run` to `/api/health` answering 200;
- idle memory: the RSS of every program under supervisord (supervisord included) with 3 cars, and
  their PSS (shared pages counted once between them);
- the largest fleet that holds the 5 s cycle: N simulated cars polled every 5 s, flushed every
  5 s. Every poll is a new reading (the simulator dates it), so the age of each car's newest
  reading in `vehicle_state` is how far the whole pipe lags: under poll interval + flush interval
  + a flush while the cycle holds, growing when the gateway (publish lag) or the ingest (flush lag)
  falls behind. It is taken at the start and the end of a window.

    .venv/bin/python -m bench.stack [--fleets 1000,3000,10000] [--window 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import aiohttp
import asyncpg
import psutil

from bench import run
from bench.servers import ROOT
from common.settings import COMPONENTS
from local_stack.ports import free_port

POLL_INTERVAL = 5.0
AGE_EVERY = 5.0
FLUSH_INTERVAL = 5.0
AGES = """
SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY age), percentile_cont(0.99) WITHIN GROUP (ORDER BY age)
FROM (SELECT extract(epoch FROM now() - ts) AS age FROM vehicle_state) AS a
"""


class Memory(NamedTuple):
    rss: float
    """Every page the process maps and holds, shared ones included: the issue's measure."""
    pss: float
    """Each shared page divided among the processes that map it (libpython, OpenSSL, pydantic-core
    are mapped by most programs): the sum is what the processes hold together, nearer to what a
    container's memory limit counts."""


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    api: str
    database_url: str
    started: float

    def programs(self) -> dict[str, psutil.Process]:
        """Every program under supervisord (supervisord itself included). What `scripts/run` starts
        beside it is left out: PostgreSQL and the simulated devices, clients from outside as real
        devices are."""
        found: dict[str, psutil.Process] = {}
        for proc in psutil.Process(self.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                if any(part.endswith("supervisord") for part in proc.cmdline()):
                    found["supervisord"] = proc
                    for child in proc.children(recursive=True):
                        cmdline = child.cmdline()
                        if "-m" in cmdline and cmdline.index("-m") + 1 < len(cmdline):
                            found[cmdline[cmdline.index("-m") + 1]] = child
                        elif cmdline and "mosquitto" in cmdline[0]:
                            found["mosquitto"] = child
        return found

    def program_memory(self) -> dict[str, Memory]:
        """MiB per program."""
        memory = {}
        for name, proc in self.programs().items():
            info = proc.memory_full_info()  # reads /proc/PID/smaps for the PSS
            memory[name] = Memory(info.rss / 2**20, info.pss / 2**20)
        return memory

    def program_cpu(self) -> dict[str, float]:
        """CPU seconds per program so far."""
        return {name: sum(proc.cpu_times()[:2]) for name, proc in self.programs().items()}


@contextlib.asynccontextmanager
async def running_stack(vehicles: int) -> AsyncIterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as data:
        Path(data).chmod(0o755)  # noqa: ASYNC240 - PostgreSQL runs as its own user when we are root
        api_port = free_port()
        env = {
            **os.environ,
            **{f"MQTT_{c.upper()}_PASSWORD": secrets.token_urlsafe(12) for c in COMPONENTS},
            "LOCAL_DATA_DIR": data,
            "LOCAL_POSTGRES_PORT": str(free_port()),
            "MQTT_PORT": str(free_port()),
            "PORT": str(api_port),
            "SIMULATED_VEHICLES": str(vehicles),
            "GATEWAY_POLL_INTERVAL": str(POLL_INTERVAL),
            "INGEST_FLUSH_INTERVAL": str(FLUSH_INTERVAL),
            "HA_DISCOVERY_ENABLED": "false" if vehicles > 100 else "true",
            "LOG_LEVEL": "WARNING",
        }
        started = time.perf_counter()
        with (Path(data) / "stack.log").open("wb") as log:
            process = subprocess.Popen(  # noqa: ASYNC220 - runs for the whole measurement
                [str(ROOT / "scripts" / "run")], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            password = await _secret(Path(data) / "secrets.env", "LOCAL_POSTGRES_PASSWORD")
            url = f"postgresql://postgres:{password}@127.0.0.1:{env['LOCAL_POSTGRES_PORT']}/vehicles"
            yield Stack(process, f"http://127.0.0.1:{api_port}", url, started)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _secret(path: Path, name: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists():  # noqa: ASYNC240 - a few polls of a small file
            for line in path.read_text().splitlines():  # noqa: ASYNC240
                if line.startswith(f"{name}="):
                    return line.split("=", 1)[1]
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{path} has no {name}")


async def healthy_after(stack: Stack, timeout: float = 120) -> float:
    """Seconds from `scripts/run` until `/api/health` answers 200."""
    async with aiohttp.ClientSession() as http:
        while time.perf_counter() - stack.started < timeout:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{stack.api}/api/health") as response:
                    if response.status == 200:
                        return time.perf_counter() - stack.started
            await asyncio.sleep(0.05)
    raise TimeoutError(f"/api/health not 200 within {timeout:.0f}s")


@dataclass
class FleetResult:
    vehicles: int
    ages: list[tuple[float, float]]
    """(p50, p99) seconds since each car's newest committed reading, one sample every AGE_EVERY s."""
    cpu: dict[str, float]
    """Each program's CPU over the window, in cores."""

    @property
    def holds(self) -> bool:
        limit = POLL_INTERVAL + FLUSH_INTERVAL + 5  # a reading waits for its poll, its flush, and the flush itself
        later = [p99 for _p50, p99 in self.ages[len(self.ages) // 2 :]]
        return max(later) <= limit and later[-1] - later[0] <= 2


async def _ages(conn: asyncpg.Connection) -> tuple[int, float, float]:
    row = await conn.fetchrow(AGES)
    assert row is not None
    return int(row[0]), float(row[1] or 0), float(row[2] or 0)


async def fleet(vehicles: int, window: float) -> FleetResult:
    async with running_stack(vehicles) as stack:
        await healthy_after(stack, timeout=300)
        conn = await asyncpg.connect(stack.database_url)
        try:
            deadline = time.monotonic() + 300
            while (await _ages(conn))[0] < vehicles:  # every car has a reading
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not every one of {vehicles} cars reached the database in 300 s")
                await asyncio.sleep(1)
            await asyncio.sleep(2 * POLL_INTERVAL)  # past the start-up's full publish
            cpu_before, began = stack.program_cpu(), time.monotonic()
            ages = []
            for _ in range(max(2, int(window / AGE_EVERY))):
                _count, p50, p99 = await _ages(conn)
                ages.append((p50, p99))
                await asyncio.sleep(AGE_EVERY)
            elapsed = time.monotonic() - began
            cpu_after = stack.program_cpu()
            cpu = {name: (seconds - cpu_before.get(name, 0.0)) / elapsed for name, seconds in cpu_after.items()}
        finally:
            await conn.close()
    return FleetResult(vehicles, ages, cpu)


async def idle(settle: float = 15) -> tuple[float, dict[str, Memory]]:
    """(start-up seconds, MiB per program) with 3 cars."""
    async with running_stack(3) as stack:
        startup = await healthy_after(stack)
        await asyncio.sleep(settle)
        return startup, stack.program_memory()


async def main(fleets: list[int], window: float) -> None:
    startup, memory = await idle()
    print(f"start-up: scripts/run to /api/health 200 in {startup:.1f} s")
    by_size = sorted(memory.items(), key=lambda item: -item[1].rss)
    parts = ", ".join(f"{name} {mib.rss:.0f} ({mib.pss:.0f})" for name, mib in by_size)
    rss, pss = sum(mib.rss for mib in memory.values()), sum(mib.pss for mib in memory.values())
    print(f"idle memory with 3 cars: {rss:.0f} MiB RSS, {pss:.0f} MiB PSS ({parts})")
    for vehicles in fleets:
        result = await fleet(vehicles, window)
        ages = " ".join(f"{p50:.0f}/{p99:.0f}" for p50, p99 in result.ages)
        cpu = ", ".join(f"{name} {cores:.2f}" for name, cores in sorted(result.cpu.items(), key=lambda i: -i[1]))
        print(
            f"{vehicles} cars polled every {POLL_INTERVAL:g} s: {'holds' if result.holds else 'does not hold'}; "
            f"newest reading age p50/p99 every {AGE_EVERY:g} s: {ages} s; CPU in cores: {cpu}"
        )
        if not result.holds:
            break


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleets", default="1000,3000,10000", help="fleet sizes, in order; stops at the first miss")
    parser.add_argument("--window", type=float, default=40)
    args = parser.parse_args()
    run(main([int(n) for n in args.fleets.split(",")], args.window))
