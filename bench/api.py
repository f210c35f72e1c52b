"""The command API under load: command round trips with 50 concurrent clients, latest-state reads
beside a bare aiohttp handler, and a state change reaching 1,000 WebSocket clients.

Each program runs in a process of its own, as under supervisord: `python -m command_api`,
`python -m gateway` (the simulated fleet, one car per client, polled every 5 s) and
`python -m ingest` (flush every 5 s), against Mosquitto and PostgreSQL; the clients run in this
process. The simulated cars answer commands at once, so a round trip is the backend's own overhead
(HTTP -> audit row -> MQTT -> gateway -> result -> audit row -> HTTP). The database is one in
service: 100,000 earlier commands and current statistics (`_in_service`).

- Commands: 50 clients, each sending lock / unlock to its own car, back to back, for `--seconds`.
  The baseline is the same clients through `bench.bare_command` (a bare aiohttp handler, MQTT, a
  responder that answers at once; each in its own process): the hops alone, no database.
- Reads: 50 clients reading `GET /api/vehicles/{vin}` for `--seconds`; the baseline is a bare
  aiohttp handler (`python -m bench.bare_http`, its own process too) returning the same bytes.
- Live: 1,000 WebSocket clients on one car's stream; a value is published over MQTT and each
  client's receive time is taken; 10 rounds.

    .venv/bin/python -m bench.api [--seconds 10] [--clients 50] [--websockets 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import psutil

from bench import run
from bench.servers import ROOT, broker_process, postgres
from bench.stats import percentile
from common.database import apply_migrations, create_pool
from common.settings import COMPONENTS, DatabaseSettings, MqttSettings
from gateway.simulator import simulated_vin
from local_stack.ports import free_port, wait_for_port

KEY = "bench-api-key-0123456789"


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], port: int | None = None) -> Iterator[int]:
    """The program running (its process id), its output in a log file of its own."""
    with tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log", delete=False) as log:
        proc = subprocess.Popen(args, env={**os.environ, **env}, cwd=ROOT, stdout=log, stderr=log)
    try:
        if port is not None:
            wait_for_port(port, timeout=30)
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def _mqtt_env(mqtt: MqttSettings) -> dict[str, str]:
    env = {f"MQTT_{c.upper()}_PASSWORD": mqtt.password_for(c) for c in COMPONENTS}
    return env | {"MQTT_PORT": str(mqtt.port), "LOG_LEVEL": "WARNING"}


def _program_env(mqtt: MqttSettings, database_url: str) -> dict[str, str]:
    return _mqtt_env(mqtt) | {"DATABASE_URL": database_url}


def _api_env(mqtt: MqttSettings, database_url: str, port: int) -> dict[str, str]:
    return _program_env(mqtt, database_url) | {
        "PORT": str(port),
        "COMMAND_API_KEY": KEY,
        "RATE_LIMIT_REQUESTS_PER_MINUTE": "10000000",
        "RATE_LIMIT_VEHICLE_COMMANDS_PER_MINUTE": "10000000",
    }


@contextlib.contextmanager
def _programs(mqtt: MqttSettings, database_url: str, vehicles: int, api_port: int) -> Iterator[dict[str, int]]:
    """The ingest, the simulated fleet and the API, each in its own process, as supervisord runs them:
    their process ids by name."""
    env = _program_env(mqtt, database_url)
    fleet = {"SIMULATED_VEHICLES": str(vehicles), "SIMULATOR_COMMAND_LATENCY": "0", "HA_DISCOVERY_ENABLED": "false"}
    with (
        _process(
            [sys.executable, "-m", "ingest"], env | {"INGEST_SPOOL_DIR": tempfile.mkdtemp(prefix="bench-spool-")}
        ) as ingest,
        _process([sys.executable, "-m", "gateway"], env | fleet) as gateway,
        _process([sys.executable, "-m", "command_api"], _api_env(mqtt, database_url, api_port), api_port) as api,
    ):
        yield {"API": api, "gateway": gateway, "ingest": ingest}


def _postgres_pids(database_url: str) -> list[int]:
    """The server listening on the URL's port and its children (a backend per connection)."""
    port = urlsplit(database_url).port
    listening = psutil.net_connections("tcp")
    [server] = {c.pid for c in listening if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr[1] == port}
    assert server is not None
    return [server, *(child.pid for child in psutil.Process(server).children(recursive=True))]


def _cpu_seconds(groups: dict[str, list[int]]) -> dict[int, tuple[str, float]]:
    """Each process's group and user and system CPU seconds so far."""
    seconds: dict[int, tuple[str, float]] = {}
    for name, pids in groups.items():
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                seconds[pid] = (name, sum(psutil.Process(pid).cpu_times()[:2]))
    return seconds


def _cpu_between(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per group between two readings; a process that began in between counts whole."""
    spent: dict[str, float] = {name: 0.0 for name, _ in (*before.values(), *after.values())}
    for pid, (name, seconds) in after.items():
        spent[name] += seconds - before.get(pid, (name, 0.0))[1]
    return spent


HISTORY = 100_000
"""Commands stored before the run: a fleet's year, about five a day for each of 50 cars."""
SEED_HISTORY = """
INSERT INTO commands (id, vin, command, status, requested_by, created_at, updated_at, finished_at, expires_at)
SELECT gen_random_uuid(), vins[1 + i % cardinality(vins)], 'lock', 'succeeded', 'bench', at, at, at, at
FROM (SELECT array_agg(vin) AS vins FROM vehicles) AS fleet,
     generate_series(1, $1) AS i, LATERAL (SELECT now() - i * interval '5 minutes' AS at) AS moment
"""


async def _in_service(conn: asyncpg.Connection) -> None:
    """A database in service rather than a new one: a year of commands, and statistics as autovacuum
    keeps them. On a new database PostgreSQL plans from an empty table's statistics and keeps those
    plans while the table grows many times over in seconds, scanning it for rows an index finds."""
    await conn.execute(SEED_HISTORY, HISTORY)
    await conn.execute("ANALYZE")
    # Its counts reported now, not up to a second later inside the commands' window (pgstat).
    await conn.execute("SELECT pg_stat_force_next_flush()")


async def _migrate(database_url: str) -> None:
    pool = await create_pool(DatabaseSettings.from_env({"DATABASE_URL": database_url}))
    try:
        await apply_migrations(pool)
    finally:
        await pool.close()


async def _for(seconds: float, clients: int, one: Callable[[int], Awaitable[None]]) -> None:
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        while time.perf_counter() < deadline:
            await one(n)

    await asyncio.gather(*(worker(n) for n in range(clients)))


async def commands(http: aiohttp.ClientSession, base: str, clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []

    async def one(n: int) -> None:
        command = "lock" if len(latencies) % 2 else "unlock"
        started = time.perf_counter()
        async with http.post(f"{base}/api/vehicles/{simulated_vin(n + 1)}/commands/{command}") as response:
            body = await response.json()
        assert response.status == 200, body
        assert body["status"] == "succeeded", body
        latencies.append((time.perf_counter() - started) * 1000)

    await _for(seconds, clients, one)
    return latencies


async def reads(http: aiohttp.ClientSession, url: str, clients: int, seconds: float) -> float:
    count = 0

    async def one(_n: int) -> None:
        nonlocal count
        async with http.get(url) as response:
            await response.read()
        assert response.status == 200
        count += 1

    started = time.perf_counter()
    await _for(seconds, clients, one)
    return count / (time.perf_counter() - started)


async def live(base: str, mqtt: MqttSettings, account: str, vin: str, clients: int, rounds: int) -> list[list[float]]:
    """Per round, every client's latency (ms) from publish to receipt."""
    from tests.helpers import client as mqtt_client

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        sockets = await asyncio.gather(
            *(http.ws_connect(f"{base}/api/vehicles/{vin}/live?access_token={KEY}") for _ in range(clients))
        )
        for ws in sockets:
            await ws.receive_json()  # the snapshot
        results: list[list[float]] = []
        async with mqtt_client(mqtt, "gateway") as publisher:
            for n in range(rounds):
                value = 10.125 + n

                async def receive(ws: aiohttp.ClientWebSocketResponse, expected: float = value) -> float:
                    while True:
                        message = json.loads((await ws.receive()).data)
                        if message.get("key") == "drivetrain/soc" and message.get("value") == expected:
                            return time.perf_counter()

                waiters = [asyncio.create_task(receive(ws)) for ws in sockets]
                await asyncio.sleep(0.2)
                started = time.perf_counter()
                await publisher.publish(f"saic/{account}/vehicles/{vin}/drivetrain/soc", str(value), qos=1)
                received = await asyncio.wait_for(asyncio.gather(*waiters), 30)
                results.append([(t - started) * 1000 for t in received])
                await asyncio.sleep(0.3)
        for ws in sockets:
            await ws.close()
    return results


@dataclass
class ApiFigures:
    commands: list[float]
    """Milliseconds per command round trip."""
    body_bytes: int
    api_reads: float
    bare_reads: float
    """Reads per second of the latest state from the API and from a bare handler with the same bytes."""
    live: list[list[float]]
    """Per round, every WebSocket client's milliseconds from publish to receipt."""
    command_cpu: dict[str, float]
    """Milliseconds of CPU per command round trip, per process (or group of processes)."""
    rows_scanned: dict[str, float]
    """Rows PostgreSQL read by sequential scans per command round trip, per table that had any: a
    statement that should find its rows by key but scans (a plan made when the table was empty)."""
    commits: float
    """PostgreSQL transactions committed per command round trip (each statement of the API is one;
    the ingest's flushes, every 5 s, count too)."""
    command_rows: dict[str, float]
    """Rows of `commands` inserted, updated and updated in place (HOT) per command round trip."""
    floor: list[float]
    """Milliseconds per round trip of the same clients through `bench.bare_command`: the hops alone."""
    floor_cpu: dict[str, float]
    """Milliseconds of CPU per round trip there, per process."""


async def _commands_and_cpu(
    http: aiohttp.ClientSession,
    base: str,
    clients: int,
    seconds: float,
    processes: Callable[[], dict[str, list[int]]],
) -> tuple[list[float], dict[str, float]]:
    """The commands' round trips (ms), and each process's CPU per command (ms)."""
    before = _cpu_seconds(processes())
    latencies = await commands(http, base, clients, seconds)
    spent = _cpu_between(before, _cpu_seconds(processes()))
    return latencies, {name: cpu * 1000 / len(latencies) for name, cpu in spent.items()}


async def _floor(
    http: aiohttp.ClientSession, mqtt: MqttSettings, broker_pid: int, clients: int, seconds: float
) -> tuple[list[float], dict[str, float]]:
    """The same clients' commands through `bench.bare_command`: the hops alone."""
    port, env = free_port(), _mqtt_env(mqtt)
    with (
        _process([sys.executable, "-m", "bench.bare_command", "responder"], env) as responder,
        _process([sys.executable, "-m", "bench.bare_command", "server", str(port)], env, port) as server,
    ):
        return await _commands_and_cpu(
            http,
            f"http://127.0.0.1:{port}",
            clients,
            seconds,
            lambda: {"server": [server], "responder": [responder], "Mosquitto": [broker_pid], "clients": [os.getpid()]},
        )


COMMITS = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
COMMAND_ROWS = "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'commands'"
SCANNED = "SELECT relname, seq_tup_read FROM pg_stat_user_tables"


async def _command_rows(conn: asyncpg.Connection) -> dict[str, int]:
    row = await conn.fetchrow(COMMAND_ROWS)
    assert row is not None
    return dict(row)


async def _rows_scanned(conn: asyncpg.Connection) -> dict[str, int]:
    return {row["relname"]: row["seq_tup_read"] for row in await conn.fetch(SCANNED)}


async def measure(seconds: float, clients: int, websockets: int) -> ApiFigures:
    with broker_process("mosquitto") as (mqtt, broker_pid), postgres() as database_url:
        await _migrate(database_url)
        api_port, bare_port = free_port(), free_port()
        with _programs(mqtt, database_url, clients, api_port) as programs:
            base = f"http://127.0.0.1:{api_port}"
            conn = await asyncpg.connect(database_url)
            while await conn.fetchval("SELECT count(*) FROM vehicle_state") < clients:  # noqa: ASYNC110 - polls the DB
                await asyncio.sleep(0.5)
            account = await conn.fetchval("SELECT account FROM vehicles WHERE vin = $1", simulated_vin(1))
            await _in_service(conn)
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(headers={"X-API-Key": KEY}, connector=connector) as http:

                def processes() -> dict[str, list[int]]:  # PostgreSQL's: a backend per connection, as they come
                    return {name: [pid] for name, pid in programs.items()} | {
                        "PostgreSQL": _postgres_pids(database_url),
                        "Mosquitto": [broker_pid],
                        "clients": [os.getpid()],
                    }

                scanned_before, commits_before = await _rows_scanned(conn), await conn.fetchval(COMMITS)
                written_before = await _command_rows(conn)
                latencies, command_cpu = await _commands_and_cpu(http, base, clients, seconds, processes)
                commits = (await conn.fetchval(COMMITS) - commits_before) / len(latencies)
                scanned = await _rows_scanned(conn)
                rows_scanned = {
                    table: (rows - scanned_before.get(table, 0)) / len(latencies)
                    for table, rows in scanned.items()
                    if rows > scanned_before.get(table, 0)
                }
                state_url = f"{base}/api/vehicles/{simulated_vin(1)}"
                async with http.get(state_url) as response:
                    body = await response.read()
                with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as sample:
                    sample.write(body)
                api_rate = await reads(http, state_url, clients, seconds)
                bare_args = [sys.executable, "-m", "bench.bare_http", str(bare_port), sample.name]
                with _process(bare_args, {}, bare_port):
                    bare_rate = await reads(http, f"http://127.0.0.1:{bare_port}/", clients, seconds)
                Path(sample.name).unlink()  # noqa: ASYNC240 - one small file
                floor, floor_cpu = await _floor(http, mqtt, broker_pid, clients, seconds)
                # Read this late: a busy backend reports its counts at most every second, an idle one
                # after 10 s; nothing but the commands writes the table.
                written = await _command_rows(conn)
                command_rows = {name: (written[name] - written_before[name]) / len(latencies) for name in written}
                await conn.close()
            rounds = await live(base, mqtt, account, simulated_vin(1), websockets, rounds=10) if websockets else []
    return ApiFigures(
        latencies,
        len(body),
        api_rate,
        bare_rate,
        rounds,
        command_cpu,
        rows_scanned,
        commits,
        command_rows,
        floor,
        floor_cpu,
    )


def _per_process(cpu: dict[str, float]) -> str:
    """Milliseconds per process, the largest first, and their sum."""
    largest_first = sorted(cpu.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {ms:.2f} ms" for name, ms in largest_first) + f" (all {sum(cpu.values()):.2f} ms)"


async def main(seconds: float, clients: int, websockets: int) -> None:
    figures = await measure(seconds, clients, websockets)
    latencies = figures.commands
    print(
        f"commands: {len(latencies)} round trips by {clients} concurrent clients in {seconds:g}s: "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
        f"max {max(latencies):.1f} ms"
    )
    print(f"CPU per command: {_per_process(figures.command_cpu)}")
    print(
        f"baseline, the hops alone (bench.bare_command: HTTP -> MQTT -> a responder -> MQTT -> HTTP, no database): "
        f"p50 {statistics.median(figures.floor):.1f} ms, p99 {percentile(figures.floor, 0.99):.1f} ms; "
        f"commands at {statistics.median(latencies) / statistics.median(figures.floor):.1f}x its p50"
    )
    print(f"baseline CPU per command: {_per_process(figures.floor_cpu)}")
    scanned = sorted(figures.rows_scanned.items(), key=lambda item: -item[1])
    print(f"PostgreSQL transactions per command: {figures.commits:.2f}")
    rows = figures.command_rows
    print(
        f"`commands` rows per command: {rows['n_tup_ins']:.2f} inserted, {rows['n_tup_upd']:.2f} updated "
        f"({rows['n_tup_hot_upd']:.2f} of them in place)"
    )
    print(
        "PostgreSQL rows read by sequential scans per command: "
        + (", ".join(f"{table} {rows:.1f}" for table, rows in scanned) or "none")
    )
    print(
        f"GET latest state ({figures.body_bytes} bytes), {clients} concurrent clients: "
        f"API {figures.api_reads:.0f} req/s, bare aiohttp handler {figures.bare_reads:.0f} req/s, "
        f"ratio {figures.api_reads / figures.bare_reads:.2f}"
    )
    if figures.live:
        p50s = [statistics.median(r) for r in figures.live]
        p99s = [percentile(r, 0.99) for r in figures.live]
        print(
            f"live: a state change reaching {websockets} WebSocket clients, 10 rounds: "
            f"median of per-round p50 {statistics.median(p50s):.1f} ms, p99 {statistics.median(p99s):.1f} ms, "
            f"last client (worst round) {max(max(r) for r in figures.live):.1f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--websockets", type=int, default=1000)
    args = parser.parse_args()
    run(main(args.seconds, args.clients, args.websockets))
