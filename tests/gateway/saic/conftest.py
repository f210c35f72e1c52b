"""The real gateway and the real saic-ismart-client-ng against the SAIC wire-protocol test server.

One broker is enough here (the broker matrix is covered by tests/broker and tests/gateway):
Mosquitto when installed, amqtt otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from broker.mosquitto import find_mosquitto
from common.settings import MqttSettings
from gateway.app import Gateway
from gateway.metrics import GatewayMetrics
from gateway.saic.settings import SaicSettings
from gateway.saic.source import SaicVehicleSource
from gateway.settings import GatewaySettings
from gateway.simulator import SimulatedFleet
from tests.conftest import RunningBroker, start_broker, stop_process
from tests.helpers import wait_until
from tests.saic_server import SaicTestServer


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    implementation = "mosquitto" if find_mosquitto() else "amqtt"
    running = start_broker(implementation, tmp_path_factory.mktemp(f"saic-broker-{implementation}"))
    yield running
    stop_process(running.process)


@pytest.fixture
async def saic_server() -> AsyncIterator[SaicTestServer]:
    server = SaicTestServer(SimulatedFleet(2, seed=1, command_latency=0))
    await server.start()
    yield server
    await server.stop()


@contextlib.asynccontextmanager
async def running_saic_gateway(
    mqtt_settings: MqttSettings, server: SaicTestServer, wait_for_polls: bool = True, **env: str
) -> AsyncIterator[Gateway]:
    settings_env = {**server.env(), "GATEWAY_POLL_INTERVAL": "0.3", "SAIC_RELOGIN_DELAY": "0.5", **env}
    metrics = GatewayMetrics()
    source = SaicVehicleSource.from_settings(SaicSettings.from_env(settings_env), metrics)
    gateway = Gateway(GatewaySettings.from_env(settings_env), mqtt_settings, source, metrics)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    if wait_for_polls:
        vehicles = len(await server.fleet.vehicles())
        await wait_until(lambda: gateway.polls >= vehicles or task.done(), what="first polls")
    try:
        yield gateway
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
