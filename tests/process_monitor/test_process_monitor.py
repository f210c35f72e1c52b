"""The supervisord event listener: its protocol, restart alerts, and FATAL taking the container down."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psutil

from common.settings import COMPONENTS
from local_stack.ports import free_port
from process_monitor.restarts import RestartTracker
from tests.alert_receiver import AlertReceiver
from tests.conftest import ROOT
from tests.helpers import wait_until


def test_restarts_are_counted_inside_the_window() -> None:
    tracker = RestartTracker(threshold=3, window=300)
    assert tracker.exited("ingest", 0) == 1
    tracker.exited("ingest", 100)
    assert not tracker.restarting("ingest", 100)
    tracker.exited("ingest", 200)
    assert tracker.restarting("ingest", 200)
    assert not tracker.restarting("ingest", 301)  # the first exit has left the window
    assert not tracker.restarting("gateway", 301)


def event(name: str, payload: str) -> bytes:
    body = payload.encode()
    header = f"ver:3.0 server:supervisor serial:1 pool:process_monitor poolserial:1 eventname:{name} len:{len(body)}\n"
    return header.encode() + body


async def test_repeated_restarts_alert_once_and_clear(alert_receiver: AlertReceiver, tmp_path: Path) -> None:
    env = {**os.environ, **alert_receiver.env(), "RUNTIME_DIR": str(tmp_path), "RESTART_ALERT_WINDOW": "1.5"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "process_monitor",
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    exited = "processname:ingest groupname:programs from_state:RUNNING expected:0 pid:1234"

    async def send(name: str, payload: str) -> None:
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert await proc.stdout.readuntil(b"READY\n") == b"READY\n"
        proc.stdin.write(event(name, payload))
        await proc.stdin.drain()
        assert await proc.stdout.readexactly(len(b"RESULT 2\nOK")) == b"RESULT 2\nOK"

    try:
        for _ in range(4):  # the third unexpected exit fires; the fourth must not fire again
            await send("PROCESS_STATE_EXITED", exited)
        await send("PROCESS_STATE_EXITED", exited.replace("expected:0", "expected:1"))  # a normal stop
        await wait_until(lambda: len(alert_receiver.webhook) == 1, what="one alert")
        await asyncio.sleep(1.6)  # quiet for the whole window
        await send("TICK_60", "when:1700000000")
        await wait_until(lambda: len(alert_receiver.webhook) == 2, what="the all-clear")
    finally:
        proc.kill()
        await proc.wait()
    firing, resolved = alert_receiver.webhook
    assert (firing["state"], firing["alert"]) == ("firing", "restarts:ingest")
    assert "ingest exited unexpectedly 3 times" in firing["message"]
    assert resolved["state"] == "resolved"
    assert [m["chat_id"] for m in alert_receiver.telegram] == ["42", "42"]
    assert alert_receiver.telegram[0]["text"].startswith("🔴 [process_monitor]")


def test_a_program_that_cannot_start_takes_the_container_down(tmp_path: Path) -> None:
    """scripts/entrypoint (the image's PID 1) with the real supervisord.conf: the gateway's
    configuration is broken, so it exits at once; after its start retries it goes FATAL."""
    passwords = {f"MQTT_{c.upper()}_PASSWORD": secrets.token_urlsafe(12) for c in COMPONENTS}
    env = {
        **os.environ,
        **passwords,
        "MQTT_PORT": str(free_port()),
        "PORT": str(free_port()),
        "DATABASE_URL": "postgresql://nobody:none@127.0.0.1:1/none",
        "RUNTIME_DIR": str(tmp_path),
        "BROKER_RUNTIME_DIR": str(tmp_path / "broker"),
        "GATEWAY_POLL_INTERVAL": "-5",
        "PROGRAM_START_RETRIES": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "scripts" / "entrypoint")], env=env, cwd=ROOT, capture_output=True, timeout=90, check=False
    )
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 1, output[-2000:]
    assert (tmp_path / "fatal").read_text().strip() == "gateway"
    assert "gateway could not be started (FATAL)" in output
    assert "gateway could not be started; exiting 1" in output
    assert time.monotonic() - started < 60
    # Nothing of the stack may be left behind.
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []


def test_the_process_monitor_loads_no_client_pydantic_or_asyncio_until_an_alert() -> None:
    """It has no broker connection and posts alerts rarely: every Python process counts toward the
    idle memory goal (issue 12), and these cost it 20 of its 34 MiB."""
    heavy = "{'aiomqtt', 'paho', 'aiohttp', 'pydantic', 'asyncio', 'common.alerts'}"
    code = f"import sys, process_monitor.__main__; print(sorted({heavy} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_a_bad_setting_stops_the_process_monitor_with_its_name(tmp_path: Path) -> None:
    for name, value, message in (
        ("RESTART_ALERT_COUNT", "0", "RESTART_ALERT_COUNT must be at least 1, not 0"),
        ("RESTART_ALERT_COUNT", "three", "RESTART_ALERT_COUNT must be a whole number, not 'three'"),
        ("RESTART_ALERT_WINDOW", "-1", "RESTART_ALERT_WINDOW must be a number of seconds above 0, not -1"),
        ("RESTART_ALERT_WINDOW", "nan", "RESTART_ALERT_WINDOW must be a number of seconds above 0, not nan"),
    ):
        env = {**os.environ, "RUNTIME_DIR": str(tmp_path), name: value}
        result = subprocess.run(
            [sys.executable, "-m", "process_monitor"], env=env, cwd=ROOT, capture_output=True, timeout=30, check=False
        )
        assert result.returncode == 2
        assert message in result.stderr.decode()
        assert b"READY" not in result.stdout


def test_the_entrypoint_refuses_a_start_retry_count_that_is_not_a_number(tmp_path: Path) -> None:
    env = {**os.environ, "RUNTIME_DIR": str(tmp_path), "PROGRAM_START_RETRIES": "often"}
    result = subprocess.run(
        [str(ROOT / "scripts" / "entrypoint")], env=env, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "PROGRAM_START_RETRIES must be a whole number >= 0, not often" in result.stdout.decode()
    assert not (tmp_path / "supervisord.pid").exists(), "supervisord is not started"
