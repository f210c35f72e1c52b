"""The amqtt broker in this process, for what only its insides show."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker import amqtt_broker
from broker.config import load_config
from broker.passwords import write_password_file
from common.settings import COMPONENTS, INTEGRATIONS_USER, MqttSettings
from local_stack.ports import free_port, wait_for_port
from tests.conftest import ROOT
from tests.helpers import client


@contextlib.asynccontextmanager
async def in_process_broker(tmp_path: Path) -> AsyncIterator[tuple[amqtt_broker.HardenedBroker, MqttSettings]]:
    passwords = {c: secrets.token_urlsafe(12) for c in (*COMPONENTS, INTEGRATIONS_USER)}
    write_password_file(tmp_path / "passwd", passwords)
    port = free_port()
    config = load_config(ROOT / "mosquitto" / "mosquitto.conf").with_port(port).with_password_file(tmp_path / "passwd")
    stop = asyncio.Event()
    brokers: list[amqtt_broker.HardenedBroker] = []
    server = asyncio.create_task(amqtt_broker.serve(config, stop, started=brokers.append))
    try:
        await asyncio.to_thread(wait_for_port, port)
        env = {"MQTT_PORT": str(port), **{f"MQTT_{c.upper()}_PASSWORD": pw for c, pw in passwords.items()}}
        yield brokers[0], MqttSettings.from_env(env)
    finally:
        stop.set()
        await server


async def test_filters_leave_the_routing_table_when_nobody_holds_them(tmp_path: Path) -> None:
    """amqtt kept every filter ever subscribed, and routing walked them all: the round trip went from
    0.64 to 8.67 ms after 5,000 subscribe/unsubscribe pairs."""
    async with in_process_broker(tmp_path) as (broker, settings), client(settings, "api") as api:
        await api.subscribe("saic/+/vehicles/+/drivetrain/soc", qos=1)
        baseline = set(broker._subscriptions)
        for n in range(100):
            await api.subscribe(f"saic/churn/vehicles/V{n}/#", qos=1)
            await api.unsubscribe(f"saic/churn/vehicles/V{n}/#")
        async with client(settings, "ingest") as ingest:  # and filters of a client that goes away
            await ingest.subscribe([(f"saic/gone/vehicles/V{n}/#", 1) for n in range(100)])
        await asyncio.sleep(1.5)  # amqtt drops a closed clean session within a second
        assert set(broker._subscriptions) == baseline


@pytest.mark.parametrize("persistent", [False, True])
async def test_a_session_goes_through_amqtts_states(tmp_path: Path, persistent: bool) -> None:
    """A plain state in place of a `transitions.Machine` per session: the same states in the same order."""
    async with in_process_broker(tmp_path) as (broker, settings):
        client_id = f"states-{secrets.token_hex(3)}"
        async with client(settings, "ingest", client_id, clean_session=not persistent):
            session, _ = broker._sessions[client_id]
            assert session.transitions.state == "connected"
            assert session.transitions.is_connected()
            assert session.last_connect_time is not None
        await asyncio.sleep(0.2)
        assert session.transitions.state == "disconnected"
        assert session.last_disconnect_time is not None
        if persistent:
            async with client(settings, "ingest", client_id, clean_session=False):
                assert broker._sessions[client_id][0] is session  # the same session, connected again
                assert session.transitions.is_connected()
