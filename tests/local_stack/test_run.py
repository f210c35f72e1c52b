"""`scripts/run` itself: one run per data folder, and a non-zero exit when a program cannot start."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.settings import COMPONENTS
from local_stack.ports import free_port, wait_for_port
from tests.conftest import ROOT

RUN = str(ROOT / "scripts" / "run")


def run_env(data: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **{f"MQTT_{c.upper()}_PASSWORD": secrets.token_urlsafe(12) for c in COMPONENTS},
        "LOCAL_DATA_DIR": str(data),
        "LOCAL_POSTGRES_PORT": str(free_port()),
        "MQTT_PORT": str(free_port()),
        "PORT": str(free_port()),
        **extra,
    }


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path (0700): PostgreSQL runs as its own user when the tests run as root.
    data = Path(tempfile.mkdtemp(prefix="run-test-"))
    data.chmod(0o755)
    yield data
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def first_run(data_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = run_env(data_dir)
    process = subprocess.Popen([RUN], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(int(env["PORT"]), timeout=60)
        yield process
    finally:
        process.terminate()
        process.wait(60)


def test_a_second_run_on_the_same_data_folder_refuses(data_dir: Path, first_run: subprocess.Popen[bytes]) -> None:
    second = subprocess.run([RUN], env=run_env(data_dir), capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert f"another scripts/run (pid {first_run.pid}) is using {data_dir}" in second.stdout
    assert first_run.poll() is None, "the first run goes on"


def test_a_program_that_cannot_start_makes_the_run_exit_non_zero(data_dir: Path) -> None:
    # The gateway refuses its settings at every start; one retry is enough to show it going FATAL.
    env = run_env(data_dir, GATEWAY_POLL_INTERVAL="-5", PROGRAM_START_RETRIES="1")
    started = time.monotonic()
    run = subprocess.run([RUN], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout[-3000:]
    assert "gateway could not be started" in run.stdout
    assert time.monotonic() - started < 120


def test_a_start_retry_count_that_is_not_a_number_is_refused(data_dir: Path) -> None:
    run = subprocess.run(
        [RUN], env=run_env(data_dir, PROGRAM_START_RETRIES="often"), capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1
    assert "PROGRAM_START_RETRIES must be a whole number >= 0, not 'often'" in run.stdout
