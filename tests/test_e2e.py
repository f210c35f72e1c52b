"""The whole backend as the image runs it (scripts/entrypoint -> supervisord.conf), on free ports,
with default intervals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import aiomqtt
import asyncpg
import psutil
import pytest
from cryptography.fernet import Fernet

from common.settings import COMPONENTS, DEVICES_USER, MqttSettings
from device_simulator.device import DeviceIdentity, SimulatedDevice
from local_stack.ports import free_port, wait_for_port
from tests.conftest import ROOT
from tests.helpers import client, collect, wait_until

pytestmark = pytest.mark.e2e

VIN = "LSJTEST0000000001"
API_KEY = "e2e-api-key-0123456789abcdef"


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    api: str
    mqtt: MqttSettings
    database_url: str
    log: Path

    def program_pid(self, module: str) -> int | None:
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if f"-m {module}" in " ".join(child.cmdline()):
                    return child.pid
            except psutil.NoSuchProcess:
                continue
        return None

    async def fetchval(self, sql: str) -> object:
        conn = await asyncpg.connect(self.database_url)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()


@pytest.fixture(scope="module")
def stack_process(tmp_path_factory: pytest.TempPathFactory, postgres: object) -> Iterator[Stack]:
    yield from launch_stack(tmp_path_factory, postgres, {"SIMULATED_VEHICLES": "3"})


def launch_stack(
    tmp_path_factory: pytest.TempPathFactory, postgres: object, settings: dict[str, str]
) -> Iterator[Stack]:
    """The entrypoint with its own database, broker and API ports, and these settings."""
    from local_stack.postgres import LocalPostgres

    assert isinstance(postgres, LocalPostgres)
    database = f"e2e_{uuid.uuid4().hex[:8]}"
    asyncio.run(_create_database(postgres.url(), database))
    runtime = tmp_path_factory.mktemp("e2e")
    passwords = {f"MQTT_{c.upper()}_PASSWORD": secrets.token_urlsafe(12) for c in (*COMPONENTS, DEVICES_USER)}
    mqtt_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        **passwords,
        "MQTT_PORT": str(mqtt_port),
        "PORT": str(api_port),
        "DATABASE_URL": postgres.url(database),
        "COMMAND_API_KEY": API_KEY,
        "DEVICES_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "RUNTIME_DIR": str(runtime),
        "BROKER_RUNTIME_DIR": str(runtime / "broker"),
        **settings,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    }
    log = runtime / "stack.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "entrypoint")],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = Stack(
        process,
        f"http://127.0.0.1:{api_port}",
        MqttSettings.from_env({**passwords, "MQTT_PORT": str(mqtt_port)}),
        postgres.url(database),
        log,
    )
    try:
        wait_for_port(api_port, timeout=30)
        yield stack
    finally:
        stop_stack(process, runtime)


def stop_stack(process: subprocess.Popen[bytes], runtime: Path) -> None:
    """SIGTERM, as Cloud Run stops a container: supervisord stops its programs in order, and none
    may be left. Whatever is left is killed, found by its RUNTIME_DIR (supervisord gives each program
    a process group of its own: killing the entrypoint's group alone would leave them running)."""
    stopped = True
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            stopped = False
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    left = []
    for leftover in psutil.process_iter():
        with contextlib.suppress(psutil.Error):  # gone meanwhile, or not ours to read
            if leftover.environ().get("RUNTIME_DIR") == str(runtime):
                left.append(" ".join(leftover.cmdline()))
                leftover.kill()
    assert stopped, "the stack did not stop within 30 s of SIGTERM"
    assert not left, f"still running after the stack stopped: {left}"


async def _create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_telemetry_rows_for_every_vehicle_within_15_s(stack_process: Stack) -> None:
    async def every_vehicle() -> bool:
        try:
            return await stack_process.fetchval("SELECT count(DISTINCT vin) FROM vehicle_telemetry") == 3
        except asyncpg.UndefinedTableError:
            return False  # the ingest has not applied the migrations yet

    await wait_until(every_vehicle, timeout=15, interval=0.5, what="telemetry rows for all 3 vehicles")


async def _command(http: aiohttp.ClientSession, stack: Stack, command: str) -> dict[str, object]:
    url = f"{stack.api}/api/vehicles/{VIN}/commands/{command}"
    async with http.post(url, headers={"X-API-Key": API_KEY}) as response:
        body: dict[str, object] = await response.json()
        assert response.status == 200, body
        return body


async def test_lock_goes_http_mqtt_gateway_and_back(stack_process: Stack, http: aiohttp.ClientSession) -> None:
    await wait_until(lambda: _vehicle_known(stack_process), timeout=15, what="vehicle known")
    for command, locked in (("unlock", False), ("lock", True)):
        body = await _command(http, stack_process, command)
        assert body["status"] == "succeeded"

        async def state_says(expected: bool = locked) -> bool:
            return await stack_process.fetchval(f"SELECT locked FROM vehicle_state WHERE vin = '{VIN}'") is expected

        await wait_until(state_says, timeout=15, interval=0.5, what=f"state row locked={locked}")


async def _vehicle_known(stack: Stack) -> bool:
    return bool(await stack.fetchval(f"SELECT count(*) FROM vehicle_state WHERE vin = '{VIN}'"))


async def test_ingest_killed_with_sigkill_is_restarted_and_rows_keep_coming(stack_process: Stack) -> None:
    pid = stack_process.program_pid("ingest")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await wait_until(
        lambda: stack_process.program_pid("ingest") not in (None, pid),
        timeout=20,
        what="supervisord restarting the ingest",
    )
    before = await stack_process.fetchval("SELECT max(ts) FROM vehicle_state")

    async def newer_rows() -> bool:
        return bool(await stack_process.fetchval(f"SELECT count(*) FROM vehicle_state WHERE ts > '{before}'"))

    await wait_until(newer_rows, timeout=20, interval=0.5, what="rows after the restart")


async def test_anonymous_mqtt_client_is_refused(stack_process: Stack) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", stack_process.mqtt.port, identifier="anon-e2e", timeout=5):
            pass


async def test_ingest_credentials_cannot_publish_commands(stack_process: Stack) -> None:
    topic = f"saic/simulator@example.com/vehicles/{VIN}/cmd/unlock"
    async with client(stack_process.mqtt, "api") as watcher:
        await watcher.subscribe(topic, qos=1)
        async with client(stack_process.mqtt, "ingest") as ingest:
            await ingest.publish(topic, json.dumps({"id": str(uuid.uuid4())}).encode(), qos=1)
        received = await collect(watcher, 1, timeout=2)
    assert received == []
    assert await stack_process.fetchval(f"SELECT locked FROM vehicle_state WHERE vin = '{VIN}'") is not False


async def test_metrics_of_every_program_through_the_api(stack_process: Stack, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{stack_process.api}/metrics") as anonymous:
        assert anonymous.status == 401

    async def scraped() -> str:
        async with http.get(f"{stack_process.api}/metrics", headers={"X-API-Key": API_KEY}) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            return await response.text()

    wanted = (
        "api_http_requests_total",
        "gateway_polls_total",
        "ingest_messages_total",
        "vehicle_telemetry_age_seconds",
        "mqtt_broker_clients_connected",
    )

    async def complete() -> bool:
        text = await scraped()
        return all(name in text for name in wanted)

    await wait_until(complete, timeout=30, interval=1, what="metrics from the API, gateway, ingest and broker")


async def test_the_opening_drive_is_derived_once_and_the_console_is_served(
    stack_process: Stack, http: aiohttp.ClientSession
) -> None:
    """The first simulated car drives for 40 s, then charges: one drive, from its first reading, even
    though the ingest was killed with SIGKILL during the first minute (the test above)."""

    async def drive_finished() -> bool:
        return bool(
            await stack_process.fetchval(f"SELECT count(*) FROM drives WHERE vin = '{VIN}' AND NOT in_progress")
        )

    await wait_until(drive_finished, timeout=90, interval=1, what="the opening drive, finished")
    async with http.get(f"{stack_process.api}/api/vehicles/{VIN}/drives", headers={"X-API-Key": API_KEY}) as response:
        drives = (await response.json())["items"]
    first_reading = await stack_process.fetchval(f"SELECT min(ts) FROM vehicle_telemetry WHERE vin = '{VIN}'")
    opening = [d for d in drives if not d["in_progress"]]
    assert len(opening) == 1, drives
    assert opening[0]["start_ts"] == first_reading.isoformat()  # type: ignore[attr-defined]
    assert opening[0]["distance_km"] > 0
    async with http.get(f"{stack_process.api}/") as response:
        page = await response.text()
        assert response.status == 200
        assert str(response.url).endswith("/console/")
    assert "uPlot.iife.min.js" in page
    async with http.get(f"{stack_process.api}/console/static/console.js") as response:
        assert response.status == 200


async def test_a_directly_connected_device_reports_through_the_edge(
    stack_process: Stack, http: aiohttp.ClientSession
) -> None:
    """Enrolled through the API, connected over MQTT-over-WebSocket on the API's port, held by the
    broker's ACL file, stored by the ingest: the device path through the real supervisord.conf."""
    headers = {"X-API-Key": API_KEY}
    async with http.post(f"{stack_process.api}/api/organizations", json={"name": "e2e"}, headers=headers) as response:
        organization = (await response.json())["id"]
    body = {"mac": "02:e2:e0:00:00:01", "organization_id": organization}
    async with http.post(f"{stack_process.api}/api/devices", json=body, headers=headers) as response:
        assert response.status == 201, await response.text()
        enrolled = await response.json()
    port = int(stack_process.api.rsplit(":", 1)[1])
    device = SimulatedDevice(
        DeviceIdentity(enrolled["device_id"], enrolled["secret"]), "127.0.0.1", port, telemetry_interval=0.5
    )
    running = asyncio.create_task(device.run())
    try:

        async def reported() -> bool:
            url = f"{stack_process.api}/api/devices/{device.device_id}/telemetry"
            async with http.get(url, headers=headers) as response:
                return len((await response.json())["readings"]) >= 2

        await wait_until(reported, timeout=20, what="the device's readings through the API")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_supervisorctl_reaches_supervisord_over_its_private_socket(stack_process: Stack) -> None:
    """Operators restart one program with supervisorctl (docs/operations.md)."""
    runtime = stack_process.log.parent
    env = {**os.environ, "RUNTIME_DIR": str(runtime)}
    ctl = [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(ROOT / "supervisord.conf")]
    assert (runtime / "supervisor.sock").stat().st_mode & 0o077 == 0, "only its owner may talk to supervisord"

    def supervisorctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ctl, *args], env=env, capture_output=True, text=True, timeout=60)

    async def gateway_running() -> bool:
        status = await asyncio.to_thread(supervisorctl, "status")
        return any(line.split()[:2] == ["programs:gateway", "RUNNING"] for line in status.stdout.splitlines())

    await wait_until(gateway_running, timeout=30, interval=0.5, what="supervisorctl showing the gateway RUNNING")
    pid = stack_process.program_pid("gateway")
    restarted = await asyncio.to_thread(supervisorctl, "restart", "programs:gateway")
    assert restarted.returncode == 0, restarted
    await wait_until(
        lambda: stack_process.program_pid("gateway") not in (None, pid), timeout=20, what="a new gateway process"
    )


def test_sigterm_stops_everything_within_cloud_runs_10_seconds(stack_process: Stack) -> None:
    children = psutil.Process(stack_process.process.pid).children(recursive=True)
    assert len(children) >= 6  # supervisord, the process monitor and the four programs
    started = time.monotonic()
    stack_process.process.send_signal(signal.SIGTERM)
    assert stack_process.process.wait(timeout=30) == 0
    elapsed = time.monotonic() - started
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert alive == [], f"still running: {[p.pid for p in alive]}"
    assert elapsed < 10
    log = stack_process.log.read_text()
    assert "final flush done: the cache is written" in log
    assert "ingest stopped" in log
    # Each program, the broker last, exits on the SIGTERM: none is left for supervisord to kill.
    assert "with SIGKILL" not in log
