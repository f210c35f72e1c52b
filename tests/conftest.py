"""Real servers for the tests: one PostgreSQL per session (a fresh database per test) and each
broker implementation started as `python -m broker`, exactly as supervisord starts it."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from broker.mosquitto import find_mosquitto
from common.lifecycle import event_loop_factory
from common.settings import COMPONENTS, DEVICES_USER, INTEGRATIONS_USER, DatabaseSettings, MqttSettings
from local_stack.ports import free_port, wait_for_port
from local_stack.postgres import LocalPostgres
from tests.image_build import ImageBuild

pytest_plugins = ["tests.alert_receiver"]

ROOT = Path(__file__).resolve().parent.parent
IMAGE_BUILD = pytest.StashKey[ImageBuild]()


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    """Tests run on the programs' own event loop (uvloop; `EVENT_LOOP=asyncio` for the standard one)."""
    return {"event_loop": event_loop_factory()}


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building the container image now when a selected test needs it (tests/image_build.py)."""
    if session.config.option.collectonly:
        return
    if any("image" in getattr(item, "fixturenames", ()) for item in session.items):
        build = session.config.stash[IMAGE_BUILD] = ImageBuild()
        build.start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if (build := session.config.stash.get(IMAGE_BUILD, None)) is not None:
        build.close()


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- PostgreSQL -----------------------------------------------------------------------------------


@contextlib.contextmanager
def throwaway_postgres(name: str) -> Iterator[LocalPostgres]:
    """A PostgreSQL of its own on a free port (outside tmp_path: the `postgres` user must reach it)."""
    base = Path(os.environ.get("TEST_DATA_DIR", "/tmp")) / f"vehicle-backend-{name}-{uuid.uuid4().hex[:8]}"
    server = LocalPostgres(base / "data", free_port(), secrets.token_urlsafe(16))
    server.start(base / "postgres.log")
    try:
        yield server
    finally:
        server.remove()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    with throwaway_postgres("pg") as server:
        yield server


@pytest.fixture
async def database_url(postgres: LocalPostgres) -> AsyncIterator[str]:
    """A fresh, empty database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres.url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres.url(name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def db_settings(database_url: str) -> DatabaseSettings:
    return DatabaseSettings.from_env({"DATABASE_URL": database_url})


# -- brokers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningBroker:
    implementation: str
    port: int
    passwords: dict[str, str]
    process: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        env = {f"MQTT_{c.upper()}_PASSWORD": pw for c, pw in self.passwords.items()}
        env["MQTT_PORT"] = str(self.port)
        return env

    def mqtt_settings(self) -> MqttSettings:
        return MqttSettings.from_env(self.env())


def start_broker(
    implementation: str,
    runtime_dir: Path,
    *,
    port: int | None = None,
    passwords: dict[str, str] | None = None,
    log: Path | None = None,
) -> RunningBroker:
    passwords = passwords or {c: secrets.token_urlsafe(12) for c in (*COMPONENTS, INTEGRATIONS_USER, DEVICES_USER)}
    port = port or free_port()
    env = {
        **os.environ,
        **{f"MQTT_{c.upper()}_PASSWORD": pw for c, pw in passwords.items()},
        "MQTT_PORT": str(port),
        "BROKER_IMPLEMENTATION": implementation,
        "BROKER_RUNTIME_DIR": str(runtime_dir),
    }
    with open(log or os.devnull, "wb") as output:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "broker"], env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(port)
    except TimeoutError:
        stop_process(process)
        raise
    return RunningBroker(implementation, port, passwords, process)


BROKERS = ["amqtt", "mosquitto"]


@pytest.fixture(scope="session", params=BROKERS)
def broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    implementation: str = request.param
    if implementation == "mosquitto" and find_mosquitto() is None:
        pytest.skip("Mosquitto is not installed (scripts/test installs it with apt-get when run as root)")
    running = start_broker(implementation, tmp_path_factory.mktemp(f"broker-{implementation}"))
    yield running
    stop_process(running.process)


@pytest.fixture
def mqtt_settings(broker: RunningBroker) -> MqttSettings:
    return broker.mqtt_settings()


@pytest.fixture
def private_mqtt(broker: RunningBroker, tmp_path: Path) -> Iterator[MqttSettings]:
    """A broker of its own, of the session broker's kind: for a test whose retained values must not
    reach other tests (a fleet of fifty cars), or whose retained values others must not disturb."""
    private = start_broker(broker.implementation, tmp_path / "broker")
    try:
        yield private.mqtt_settings()
    finally:
        stop_process(private.process)
