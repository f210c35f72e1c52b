"""The container image, built in the background from the start of the session.

On a clean machine the build takes minutes (the Debian base made by mmdebstrap, the dependency
layer, vfs copies of every layer), and its tests run last: so the build starts as soon as the
session knows it will need the image, at the lowest CPU and I/O priority, and the tests that run
meanwhile keep the machine. The engine is the one running, else a dockerd of our own (root, vfs,
no networking of its own) whose data root stays cached between runs.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "docker"
"""dockerd's data root: the base image and the dependency layer stay cached between runs (git-ignored)."""
BASE_IMAGE = ("debian", "trixie-slim")
IMAGE_TAG = "vehicle-backend:test"


def _background(command: list[str]) -> list[str]:
    """`command` at the lowest CPU priority and the lowest best-effort I/O priority."""
    ionice = ["ionice", "-c", "2", "-n", "7"] if shutil.which("ionice") else []
    return ["nice", "-n", "19", *ionice, *command]


def _engine(base_url: str | None = None) -> Any:
    docker = importlib.import_module("docker")
    client = docker.DockerClient(base_url=base_url) if base_url else docker.from_env()
    client.ping()
    return client


@dataclass
class Built:
    client: Any
    image: Any
    seconds: float


class ImageBuild:
    """Started once (`start`); `result` waits for it and raises what stopped it (a skip included)."""

    def __init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="image-build", daemon=True)
        self._built: Built | None = None
        self._error: BaseException | None = None
        self._dockerd: subprocess.Popen[bytes] | None = None
        self._scratch: Path | None = None

    def start(self) -> None:
        self._thread.start()

    def result(self) -> Built:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._built is not None
        return self._built

    def close(self) -> None:
        if self._built is not None:
            self._built.client.close()
        if self._dockerd is not None:
            self._dockerd.terminate()
            try:
                self._dockerd.wait(20)
            except subprocess.TimeoutExpired:
                self._dockerd.kill()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def _run(self) -> None:
        try:
            started = time.monotonic()
            client = self._connect()
            _ensure_base(client)
            self._built = Built(client, _build(client), time.monotonic() - started)
        except BaseException as exc:  # a skip or a failure, raised again where the image is needed
            self._error = exc

    def _connect(self) -> Any:
        try:
            importlib.import_module("docker")
        except ImportError:
            pytest.skip("the docker package (Docker's SDK for Python) is not installed")
        try:
            return _engine()
        except Exception:
            pass
        dockerd = shutil.which("dockerd")
        if dockerd is None or os.geteuid() != 0:
            pytest.skip("no Docker engine, and dockerd " + ("is not installed" if dockerd is None else "needs root"))
        self._scratch = scratch = Path(tempfile.mkdtemp(prefix="vb-docker-"))  # short: the exec root holds sockets
        socket = scratch / "docker.sock"
        CACHE.mkdir(parents=True, exist_ok=True)
        with (scratch / "dockerd.log").open("wb") as log:
            self._dockerd = subprocess.Popen(
                _background(
                    [
                        dockerd,
                        "--storage-driver=vfs",
                        "--iptables=false",
                        "--bridge=none",
                        f"--data-root={CACHE}",
                        f"--exec-root={scratch / 'exec'}",
                        f"--pidfile={scratch / 'docker.pid'}",
                        f"--host=unix://{socket}",
                    ]
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                return _engine(f"unix://{socket}")
            except Exception as exc:
                if self._dockerd.poll() is not None or time.monotonic() > deadline:
                    tail = (scratch / "dockerd.log").read_text(errors="replace")[-2000:]
                    pytest.skip(f"dockerd could not start here ({type(exc).__name__}): {tail}")
                time.sleep(0.5)


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
            _background(
                [
                    "mmdebstrap",
                    "--quiet",
                    "--variant=minbase",
                    tag.split("-")[0],
                    str(tarball),
                    "http://deb.debian.org/debian",
                ]
            ),
            check=True,
            timeout=900,
        )
        client.api.import_image(src=str(tarball), repository=repository, tag=tag)


def _build(client: Any) -> Any:
    """The image as it ships (`Dockerfile`), built with this machine's proxy authorities for PyPI."""
    for authority in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        copy = ROOT / "docker" / "build-ca" / authority.name
        if not copy.exists() or copy.read_bytes() != authority.read_bytes():  # untouched: its layer stays cached
            shutil.copy(authority, copy)
    for target, tag in (("build", f"{IMAGE_TAG}-build-stage"), (None, IMAGE_TAG)):
        # The build stage tagged too, so that pruning what earlier runs left keeps its cached layers.
        built, _logs = client.images.build(
            path=str(ROOT), dockerfile="Dockerfile", tag=tag, target=target, rm=True, network_mode="host"
        )
    client.images.prune(filters={"dangling": True})
    return built
