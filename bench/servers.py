"""Real servers for the benchmarks: a broker as `python -m broker` and a throwaway PostgreSQL."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from common.settings import COMPONENTS, MqttSettings
from local_stack.ports import free_port, wait_for_port
from local_stack.postgres import LocalPostgres

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def broker(implementation: str) -> Iterator[MqttSettings]:
    env = {f"MQTT_{c.upper()}_PASSWORD": secrets.token_urlsafe(12) for c in COMPONENTS}
    env["MQTT_PORT"] = str(free_port())
    with tempfile.TemporaryDirectory() as runtime:
        proc = subprocess.Popen(
            [sys.executable, "-m", "broker"],
            env={
                **env,
                "BROKER_IMPLEMENTATION": implementation,
                "BROKER_RUNTIME_DIR": runtime,
                "PATH": "/usr/bin:/bin",
            },
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(int(env["MQTT_PORT"]))
            yield MqttSettings.from_env(env)
        finally:
            proc.terminate()
            proc.wait(10)


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    base = Path(tempfile.mkdtemp(prefix="bench-pg-", dir="/tmp"))
    base.chmod(0o755)
    server = LocalPostgres(base / "data", free_port(), secrets.token_urlsafe(12))
    server.start(base / "pg.log")
    try:
        yield server.url()
    finally:
        server.remove()
