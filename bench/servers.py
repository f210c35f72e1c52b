"""Real servers for the benchmarks: a broker as `python -m broker`, a throwaway PostgreSQL, and the
gateway and ingest running against them."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from common.settings import COMPONENTS, DEVICES_USER, DatabaseSettings, MqttSettings
from gateway.app import Gateway
from gateway.settings import GatewaySettings
from gateway.simulator import SimulatedFleet
from ingest.app import Ingest, open_sink
from ingest.settings import IngestSettings
from local_stack.ports import free_port, wait_for_port
from local_stack.postgres import LocalPostgres

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def broker(implementation: str) -> Iterator[MqttSettings]:
    with broker_process(implementation) as (settings, _pid):
        yield settings


@contextlib.contextmanager
def broker_process(implementation: str) -> Iterator[tuple[MqttSettings, int]]:
    """The broker, and its process id (Mosquitto's own: `python -m broker` execs it)."""
    env = {f"MQTT_{c.upper()}_PASSWORD": secrets.token_urlsafe(12) for c in (*COMPONENTS, DEVICES_USER)}
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
            yield MqttSettings.from_env(env), proc.pid
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
        shutil.rmtree(base, ignore_errors=True)  # its log; remove() takes only the data directory


@dataclass
class Backend:
    """Gateway (simulated fleet) and ingest running in this process against real servers."""

    mqtt: MqttSettings
    db: DatabaseSettings
    gateway: Gateway
    ingest: Ingest


@contextlib.asynccontextmanager
async def running_backend(
    implementation: str, *, vehicles: int, flush_interval: float, poll_interval: float = 5.0
) -> AsyncIterator[Backend]:
    with broker(implementation) as mqtt, postgres() as url:
        db = DatabaseSettings.from_env({"DATABASE_URL": url})
        stop = asyncio.Event()
        sink = await open_sink("postgres", {"DATABASE_URL": url}, stop)
        assert sink is not None
        ingest = Ingest(IngestSettings.from_env({"INGEST_FLUSH_INTERVAL": str(flush_interval)}), mqtt, sink)
        gateway = Gateway(
            GatewaySettings.from_env(
                {
                    "SIMULATED_VEHICLES": str(vehicles),
                    "GATEWAY_POLL_INTERVAL": str(poll_interval),
                    "HA_DISCOVERY_ENABLED": "false",  # ~70 configs per car: not what these benchmarks measure
                }
            ),
            mqtt,
            SimulatedFleet(vehicles, seed=1, command_latency=0),
        )
        tasks = [asyncio.create_task(ingest.run(stop))]
        await ingest.mqtt.wait_connected(10)  # subscribed before the fleet's first full publish
        tasks.append(asyncio.create_task(gateway.run(stop)))
        try:
            yield Backend(mqtt, db, gateway, ingest)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await sink.close()
