"""`python -m local_stack` (what `scripts/run` runs): the whole backend on the embedded default.

Starts a PostgreSQL of our own (data in `.data/postgres`) unless DATABASE_URL is set, then
supervisord with the project's `supervisord.conf`; Ctrl-C stops supervisord (and so every
program, the ingest writing its cache first) and then PostgreSQL.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import asyncpg
from dotenv import dotenv_values

from local_stack.postgres import LocalPostgres, PostgresError
from local_stack.secrets import load_or_create, write_private

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "vehicles"


def say(message: str) -> None:
    print(f"[run] {message}", flush=True)


async def ensure_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


COUNTS = """
SELECT (SELECT count(*) FROM vehicles), (SELECT count(*) FROM vehicle_telemetry),
       (SELECT count(*) FROM drives WHERE NOT in_progress), (SELECT count(*) FROM charges WHERE NOT in_progress)
"""


async def count_rows(url: str) -> tuple[int, int, int, int]:
    conn = await asyncpg.connect(url)
    try:
        counts = await conn.fetchrow(COUNTS)
        assert counts is not None
        vehicles, rows, drives, charges = counts
        return int(vehicles), int(rows), int(drives), int(charges)
    finally:
        await conn.close()


def lock_data_dir(data_dir: Path) -> int | None:
    """An open descriptor holding the folder's lock for this process's life; None when another
    `scripts/run` holds it (it would stop that run's PostgreSQL and take over its log and fleet)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def programs_env(data_dir: Path, runtime_dir: Path) -> dict[str, str]:
    """What supervisord and its programs run with: generated secrets, then `.env`, then the
    environment, and the folders and defaults supervisord.conf expects."""
    generated = load_or_create(data_dir / "secrets.env")
    env = {**generated, **{k: v for k, v in dotenv_values(ROOT / ".env").items() if v}, **os.environ}
    runtime_dir.mkdir(parents=True, exist_ok=True)
    env["RUNTIME_DIR"] = str(runtime_dir)
    env["BROKER_RUNTIME_DIR"] = str(runtime_dir / "broker")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("PROGRAM_START_RETRIES", "5")  # supervisord.conf's startretries
    return env


def main() -> int:
    data_dir = Path(os.environ.get("LOCAL_DATA_DIR", ROOT / ".data")).resolve()
    if lock_data_dir(data_dir) is None:
        holder = (data_dir / ".lock").read_text().strip() or "?"
        say(f"another scripts/run (pid {holder}) is using {data_dir}; stop it first, or set LOCAL_DATA_DIR")
        return 1
    runtime_dir = data_dir / "run"
    env = programs_env(data_dir, runtime_dir)
    retries = env["PROGRAM_START_RETRIES"]
    if not retries.isdigit():
        say(f"PROGRAM_START_RETRIES must be a whole number >= 0, not {retries!r}")
        return 1
    write_private(data_dir / "dev-api-key", env["COMMAND_API_KEY"] + "\n")
    fatal = runtime_dir / "fatal"  # left by the process monitor when a program could not be started
    fatal.unlink(missing_ok=True)

    postgres: LocalPostgres | None = None
    if "DATABASE_URL" not in env:
        postgres = LocalPostgres(
            data_dir / "postgres", int(env.get("LOCAL_POSTGRES_PORT", "54329")), env["LOCAL_POSTGRES_PASSWORD"]
        )
        say(f"starting PostgreSQL on 127.0.0.1:{postgres.port} (data in {postgres.data_dir})")
        try:
            if postgres.running():
                postgres.stop()  # left over from an unclean exit
            postgres.start(data_dir / "postgres.log")
            asyncio.run(ensure_database(postgres.url(), DATABASE))
        except (PostgresError, OSError) as exc:
            say(f"cannot start PostgreSQL: {exc}")
            return 1
        env["DATABASE_URL"] = postgres.url(DATABASE)

    port = env.get("PORT", "8080")
    announce(data_dir, port, env["COMMAND_API_KEY"])
    supervisor = subprocess.Popen(
        [str(Path(sys.executable).parent / "supervisord"), "-c", str(ROOT / "supervisord.conf")],
        env=env,
        cwd=ROOT,
        start_new_session=True,  # Ctrl-C reaches us only; we stop things in order
    )

    devices = start_device_simulator(env, data_dir, port)

    def forward(signum: int, _frame: FrameType | None) -> None:
        say("stopping (the ingest writes its cache first)...")
        for child in (devices, supervisor):
            if child is not None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        report_first_rows(supervisor, env["DATABASE_URL"])
        code = supervisor.wait()
    finally:
        stop_child(devices)
        if postgres is not None:
            say("stopping PostgreSQL")
            postgres.stop()
    if fatal.exists():
        say(f"{fatal.read_text().strip()} could not be started (see its lines above); exiting 1")
        return 1
    say(f"stopped (supervisord exit status {code})")
    return code


def stop_child(child: subprocess.Popen[bytes] | None) -> None:
    if child is not None:
        child.terminate()
        child.wait(timeout=10)


def announce(data_dir: Path, port: str, key: str) -> None:
    say(f"API on http://127.0.0.1:{port}; development API key in {data_dir / 'dev-api-key'}")
    say(f"console: http://127.0.0.1:{port}/console/ (sign in with the key: {key})")
    say(
        f'lock a simulated car: curl -s -X POST -H "X-API-Key: $(cat {data_dir / "dev-api-key"})" '
        f"http://127.0.0.1:{port}/api/vehicles/LSJTEST0000000001/commands/lock"
    )


def start_device_simulator(env: dict[str, str], data_dir: Path, port: str) -> subprocess.Popen[bytes] | None:
    """SIMULATED_DEVICES (5 unless set) directly connected devices, outside the backend as real ones
    are: they reach it through the API's MQTT edge (`/mqtt`)."""
    count = int(env.get("SIMULATED_DEVICES", "5"))
    if count <= 0:
        return None
    say(f"{count} simulated devices connect through ws://127.0.0.1:{port}/mqtt (SIMULATED_DEVICES)")
    device_env = {
        **env,
        "SIMULATED_DEVICES": str(count),
        "DEVICE_SIMULATOR_API": f"http://127.0.0.1:{port}",
        "DEVICE_SIMULATOR_STATE": str(data_dir / "simulated-devices.json"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "device_simulator"], env=device_env, cwd=ROOT, start_new_session=True
    )


def report_first_rows(supervisor: subprocess.Popen[bytes], url: str) -> None:
    """For the first two minutes, say how many telemetry rows, drives and charges there are."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and supervisor.poll() is None:
        try:
            supervisor.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try:
                vehicles, rows, drives, charges = asyncio.run(count_rows(url))
                say(f"{rows} telemetry rows from {vehicles} vehicles, {drives} drives, {charges} charges so far")
            except (OSError, asyncpg.PostgresError) as exc:
                say(f"database not ready yet ({type(exc).__name__})")


if __name__ == "__main__":
    sys.exit(main())
