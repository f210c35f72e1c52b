"""The container image, built and run as it ships: both Dockerfiles say the same; the image builds
from Debian's packages and PyPI (its base made by mmdebstrap where Docker Hub is out of reach) on
the running Docker engine or on a dockerd this test starts itself, and runs the whole product.
hadolint runs in scripts/test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from common.settings import COMPONENTS
from local_stack.ports import free_port
from local_stack.postgres import LocalPostgres
from tests.conftest import IMAGE_BUILD, ROOT
from tests.image_build import IMAGE_TAG, Built


def instructions(path: str) -> list[str]:
    lines = (ROOT / path).read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_both_dockerfiles_build_the_same_image() -> None:
    assert instructions("Dockerfile") == instructions("docker/cloud-run/Dockerfile.all-in-one")


def test_the_image_leaves_out_what_it_does_not_run() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", ".data", ".env", "tests", "bench"):
        assert path in ignored


# -- the image, built in the background since the session began (tests/image_build.py) ----------


@pytest.fixture(scope="module")
def built(request: pytest.FixtureRequest) -> Built:
    waiting = time.monotonic()
    result = request.config.stash[IMAGE_BUILD].result()  # started when the session was collected
    waited = time.monotonic() - waiting
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # reported in every run, not only on a failure
        print(
            f"\n[image] {IMAGE_TAG}: {result.image.attrs['Size'] / 2**20:.0f} MiB, built in {result.seconds:.0f} s"
            f" in the background at the lowest priority; the tests waited {waited:.0f} s for it"
        )
    return result


@pytest.fixture(scope="module")
def docker_client(built: Built) -> Any:
    return built.client


@pytest.fixture(scope="module")
def image(built: Built) -> Any:
    return built.image


@pytest.fixture(scope="module")
def image_database(postgres: LocalPostgres) -> Iterator[str]:
    name = f"image_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(postgres.url())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield postgres.url(name)
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _environment(port: int, database_url: str, **extra: str) -> dict[str, str]:
    env = {f"MQTT_{c.upper()}_PASSWORD": secrets.token_urlsafe(12) for c in COMPONENTS}
    return env | {
        "PORT": str(port),
        "MQTT_PORT": str(free_port()),
        "DATABASE_URL": database_url,
        "COMMAND_API_KEY": API_KEY,
        "SIMULATED_VEHICLES": str(CARS),
        "GATEWAY_POLL_INTERVAL": "2",
        **extra,
    }


API_KEY = "k" * 24
IMAGE_TIMEOUT = pytest.mark.timeout(1200)
"""pytest-timeout counts fixture set-up: the first of these waits for what is left of the build."""
CARS = 3


def _get(port: int, path: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def _count(database_url: str, sql: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(sql))
    except asyncpg.UndefinedTableError:
        return 0  # the image's programs have not applied the migrations yet
    finally:
        await conn.close()


@IMAGE_TIMEOUT
def test_the_image_runs_the_whole_product(docker_client: Any, image: Any, image_database: str) -> None:
    """Against the suite's PostgreSQL with the simulated fleet, on the host's network (the image's
    own broker and API on free ports): healthy, storing every car, commanding one, serving the
    console, as the non-root user, and stopping within Cloud Run's 10 s with the final flush."""
    port = free_port()
    container = docker_client.containers.run(
        image.id, detach=True, environment=_environment(port, image_database), network_mode="host"
    )
    try:
        deadline = time.monotonic() + 120
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            container.reload()
            status, body = (0, b"")
            with contextlib.suppress(OSError):
                status, body = _get(port, "/api/health")
            health = json.loads(body) if status in (200, 503) else {}
            stored = asyncio.run(_count(image_database, "SELECT count(DISTINCT vin) FROM vehicle_telemetry"))
            healthy = container.attrs["State"]["Health"]["Status"] == "healthy"
            if health.get("status") == "ok" and healthy and stored == CARS:
                break
            time.sleep(2)
        logs = container.logs().decode(errors="replace")
        assert health.get("status") == "ok", logs[-3000:]
        assert container.attrs["State"]["Health"]["Status"] == "healthy", logs[-3000:]
        assert stored == CARS, logs[-3000:]

        status, body = _get(port, "/console/")
        assert (status, b"<html" in body.lower()) == (200, True)
        lock = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/vehicles/LSJTEST0000000001/commands/lock?wait=10",
            method="POST",
            headers={"X-API-Key": API_KEY},
        )
        with urllib.request.urlopen(lock, timeout=20) as response:
            assert json.load(response)["status"] == "succeeded"

        users = {uid for _pid, uid in container.top(ps_args="-o pid,uid")["Processes"]}
        assert users == {"10001"}, users
        found = container.exec_run(["sh", "-c", "find / -xdev -writable 2>/dev/null"], user="10001").output
        writable = [p for p in found.decode().split() if not p.startswith(("/proc", "/sys", "/dev"))]
        # Only the runtime directory (RUNTIME_DIR, under /tmp) and the system's world-writable temp folders.
        outside = [p for p in writable if not p.startswith(("/tmp", "/var/tmp", "/run/lock", "/var/lock"))]
        assert outside == [], outside

        started = time.monotonic()
        container.stop(timeout=10)
        stopped_in = time.monotonic() - started
        container.reload()
        logs = container.logs().decode(errors="replace")
        assert container.attrs["State"]["ExitCode"] == 0, logs[-3000:]
        assert stopped_in < 10, stopped_in
        assert "final flush done" in logs
    finally:
        container.remove(force=True)


@IMAGE_TIMEOUT
def test_a_program_that_cannot_start_ends_the_container_with_an_error(
    docker_client: Any, image: Any, image_database: str
) -> None:
    port = free_port()
    env = _environment(port, image_database, GATEWAY_POLL_INTERVAL="often", PROGRAM_START_RETRIES="1")
    container = docker_client.containers.run(image.id, detach=True, environment=env, network_mode="host")
    try:
        result = container.wait(timeout=120)
        logs = container.logs().decode(errors="replace")
        assert result["StatusCode"] == 1, logs[-3000:]
        assert "gateway could not be started" in logs
    finally:
        container.remove(force=True)
