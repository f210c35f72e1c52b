"""The container image: both Dockerfiles say the same, and (where a Docker engine runs) the image
builds, starts, answers /api/health and passes its own HEALTHCHECK. hadolint runs in scripts/test."""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from common.settings import COMPONENTS
from local_stack.ports import free_port
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


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        pytest.skip(f"no Docker engine to build and run the image here ({type(exc).__name__}: {exc})")
    yield client
    client.close()


def test_the_image_runs_and_reports_healthy(docker_client: Any, database_url: str) -> None:
    image, _logs = docker_client.images.build(
        path=str(ROOT), dockerfile="Dockerfile", tag="vehicle-backend:test", rm=True
    )
    port = free_port()
    env = {f"MQTT_{c.upper()}_PASSWORD": secrets.token_urlsafe(12) for c in COMPONENTS}
    env |= {"PORT": str(port), "MQTT_PORT": str(free_port()), "DATABASE_URL": database_url, "COMMAND_API_KEY": "k" * 24}
    container = docker_client.containers.run(image.id, detach=True, environment=env, network_mode="host")
    try:
        deadline = time.monotonic() + 120
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            container.reload()
            state = container.attrs["State"]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=3) as response:
                    health = json.load(response)
            except OSError:
                health = {}
            if health.get("status") == "ok" and state.get("Health", {}).get("Status") == "healthy":
                break
            time.sleep(2)
        assert health.get("status") == "ok", container.logs().decode()[-3000:]
        assert container.attrs["State"]["Health"]["Status"] == "healthy"
        assert container.attrs["Config"]["User"] == "10001"
        container.kill(signal="SIGTERM")
        assert container.wait(timeout=15)["StatusCode"] == 0
    finally:
        container.remove(force=True)
