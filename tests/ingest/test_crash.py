"""`kill -9` of the ingest mid-stream loses nothing: the real program (`python -m ingest`) on a real
broker and PostgreSQL, killed while acknowledged messages wait in its cache for the next flush."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from broker.mosquitto import find_mosquitto
from common import topics
from tests.conftest import ROOT, RunningBroker, start_broker, stop_process
from tests.gateway.test_gateway import root, vin
from tests.helpers import client, wait_until

VEHICLES = (31, 32, 33)
FLUSH_INTERVAL = 3.0
"""Long enough that a kill at any moment finds unflushed, already acknowledged messages."""


def start_ingest(broker: RunningBroker, database_url: str, client_id: str, data: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **broker.env(),
        "DATABASE_URL": database_url,
        "INGEST_CLIENT_ID": client_id,
        "INGEST_SPOOL_DIR": str(data / "spool"),
        "INGEST_WAL_DIR": str(data / "wal"),
        "INGEST_FLUSH_INTERVAL": str(FLUSH_INTERVAL),
    }
    log = (data / "ingest.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "ingest"], env=env, cwd=ROOT, stdout=log, stderr=log)


@pytest.fixture(params=["amqtt", "mosquitto"])
def own_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningBroker]:
    """A broker of its own: the session's broker carries other tests' retained trees and sessions;
    what this test measures is the ingest."""
    if request.param == "mosquitto" and find_mosquitto() is None:
        pytest.skip("Mosquitto is not installed (scripts/test installs it with apt-get when run as root)")
    running = start_broker(request.param, tmp_path / "broker")
    yield running
    stop_process(running.process)


async def test_kill_9_mid_stream_loses_nothing(own_broker: RunningBroker, database_url: str, tmp_path: Path) -> None:
    broker = own_broker
    client_id = f"ingest-crash-{uuid.uuid4().hex[:8]}"
    published: list[tuple[str, datetime]] = []
    ts0 = datetime(2026, 3, 1, tzinfo=UTC)

    async def publish(count: int) -> None:
        for _ in range(count):
            for n in VEHICLES:
                ts = ts0 + timedelta(seconds=len(published))
                await gateway.publish(f"{root(n)}/{topics.REFRESH_LAST_VEHICLE_STATE}", ts.isoformat(), qos=1)
                await gateway.publish(f"{root(n)}/drivetrain/soc", str(len(published) % 100), qos=1)
                published.append((vin(n), ts))
            await asyncio.sleep(0.01)

    async def stored() -> list[tuple[str, datetime]]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT vin, ts FROM vehicle_telemetry WHERE vin = ANY($1::text[])", [vin(n) for n in VEHICLES]
            )
        except asyncpg.UndefinedTableError:
            return []
        finally:
            await conn.close()
        return [(r["vin"], r["ts"]) for r in rows]

    log = tmp_path / "ingest.log"

    def connections() -> int:
        return log.read_bytes().count(b"connected to broker") if log.exists() else 0

    ingest = start_ingest(broker, database_url, client_id, tmp_path)
    try:
        async with client(broker.mqtt_settings(), "gateway") as gateway:
            await wait_until(lambda: connections() == 1, timeout=30, what="the ingest subscribed")
            await publish(1)
            await wait_until(lambda: _has_rows(stored, 1), timeout=30, what="the ingest up and flushing")
            await publish(100)
            # Kill between flushes: the WAL must hold messages the broker already forgot.
            ingest.send_signal(signal.SIGKILL)
            ingest.wait(10)
            wal_bytes = sum(p.stat().st_size for p in (tmp_path / "wal").glob("*.wal"))
            assert wal_bytes > 0, "the kill should have left acknowledged, unflushed messages in the WAL"
            assert len(await stored()) < len(published), "the kill should have come before the last flush"
            await publish(50)  # queued by the broker for the ingest's persistent session
            ingest = start_ingest(broker, database_url, client_id, tmp_path)
            await wait_until(lambda: connections() == 2, timeout=30, what="the ingest back")
            await publish(50)
            expected = len(published)
            await wait_until(lambda: _has_rows(stored, expected), timeout=30, what="every reading stored")
    finally:
        stop_process(ingest)
    rows = await stored()
    assert len(rows) == len(set(rows))  # none twice
    assert set(rows) == set(published)  # none lost
    assert b"replayed" in log.read_bytes()


async def _has_rows(stored: object, count: int) -> bool:
    rows = await stored()  # type: ignore[operator]
    return len(rows) >= count
