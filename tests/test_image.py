"""The container image, built and run as it ships: both Dockerfiles say the same; the image builds
from Debian's packages and PyPI (its base made by mmdebstrap where Docker Hub is out of reach) on
the running Docker engine or on a dockerd this test starts itself, and runs the whole product.
hadolint runs in scripts/test."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from common.settings import COMPONENTS
from local_stack.ports import free_port
from local_stack.postgres import LocalPostgres
from tests.conftest import ROOT


def instructions(path: str) -> list[str]:
    lines = (ROOT / path).read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_both_dockerfiles_build_the_same_image() -> None:
    assert instructions("Dockerfile") == instructions("docker/cloud-run/Dockerfile.all-in-one")


def test_the_image_leaves_out_what_it_does_not_run() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", ".data", ".env", "tests", "bench"):
        assert path in ignored


# -- a Docker engine: the one running, else our own dockerd (root, vfs, no networking of its own) ----

CACHE = ROOT / ".cache" / "docker"
"""dockerd's data root: the base image and the dependency layer stay cached between runs (git-ignored)."""
BASE_IMAGE = ("debian", "trixie-slim")
IMAGE_TAG = "vehicle-backend:test"


def _engine(base_url: str | None = None) -> Any:
    docker = importlib.import_module("docker")

    client = docker.DockerClient(base_url=base_url) if base_url else docker.from_env()
    client.ping()
    return client


def _start_dockerd(scratch: Path) -> tuple[subprocess.Popen[bytes], str]:
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        pytest.skip("no Docker engine, and dockerd " + ("is not installed" if dockerd is None else "needs root"))
    socket = scratch / "docker.sock"
    CACHE.mkdir(parents=True, exist_ok=True)
    log = (scratch / "dockerd.log").open("wb")
    process = subprocess.Popen(
        [
            dockerd,
            "--storage-driver=vfs",
            "--iptables=false",
            "--bridge=none",
            f"--data-root={CACHE}",
            f"--exec-root={scratch / 'exec'}",
            f"--pidfile={scratch / 'docker.pid'}",
            f"--host=unix://{socket}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, f"unix://{socket}"


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    pytest.importorskip("docker")
    try:
        client = _engine()
    except Exception:
        client = None
    if client is not None:
        yield client
        client.close()
        return
    scratch = Path(tempfile.mkdtemp(prefix="vb-docker-"))  # short: the exec root holds sockets
    process, url = _start_dockerd(scratch)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = _engine(url)
                break
            except Exception as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = (scratch / "dockerd.log").read_text(errors="replace")[-2000:]
                    pytest.skip(f"dockerd could not start here ({type(exc).__name__}): {tail}")
                time.sleep(0.5)
        yield client
        client.close()
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(scratch, ignore_errors=True)


def _ensure_base(client: Any) -> None:
    """`debian:trixie-slim`, pulled, or else made from Debian's packages by mmdebstrap and imported
    under the same tag (this machine reaches Debian's mirror but not Docker Hub)."""
    errors = importlib.import_module("docker.errors")

    repository, tag = BASE_IMAGE
    try:
        client.images.get(f"{repository}:{tag}")
        return
    except errors.ImageNotFound:
        pass
    try:
        client.images.pull(repository, tag)
        return
    except errors.APIError:
        pass
    if shutil.which("mmdebstrap") is None:
        pytest.skip(f"{repository}:{tag} cannot be pulled and mmdebstrap (Debian package) is not installed")
    with tempfile.TemporaryDirectory() as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                tag.split("-")[0],
                str(tarball),
                "http://deb.debian.org/debian",
            ],
            check=True,
            timeout=600,
        )
        client.api.import_image(src=str(tarball), repository=repository, tag=tag)


@pytest.fixture(scope="module")
def image(docker_client: Any, request: pytest.FixtureRequest) -> Any:
    """The image as it ships (`Dockerfile`), built with this machine's proxy authorities for PyPI."""
    _ensure_base(docker_client)
    for authority in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        copy = ROOT / "docker" / "build-ca" / authority.name
        if not copy.exists() or copy.read_bytes() != authority.read_bytes():  # untouched: its layer stays cached
            shutil.copy(authority, copy)
    started = time.monotonic()
    for target, tag in (("build", f"{IMAGE_TAG}-build-stage"), (None, IMAGE_TAG)):
        # The build stage tagged too, so that pruning what earlier runs left keeps its cached layers.
        built, _logs = docker_client.images.build(
            path=str(ROOT), dockerfile="Dockerfile", tag=tag, target=target, rm=True, network_mode="host"
        )
    seconds = time.monotonic() - started
    docker_client.images.prune(filters={"dangling": True})
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # reported in every run, not only on a failure
        print(f"\n[image] {IMAGE_TAG}: {built.attrs['Size'] / 2**20:.0f} MiB, built in {seconds:.0f} s")
    return built


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


def test_a_program_that_cannot_start_ends_the_container_with_an_error(
    docker_client: Any, image: Any, image_database: str
) -> None:
    port = free_port()
    env = _environment(port, image_database, GATEWAY_POLL_INTERVAL="often")
    container = docker_client.containers.run(image.id, detach=True, environment=env, network_mode="host")
    try:
        result = container.wait(timeout=120)
        logs = container.logs().decode(errors="replace")
        assert result["StatusCode"] == 1, logs[-3000:]
        assert "gateway could not be started" in logs
    finally:
        container.remove(force=True)
