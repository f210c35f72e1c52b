"""Fixtures of the gateway tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.simulator import SimulatedFleet
from tests.gateway.accounts import SECOND
from tests.saic_server import SaicTestServer


@pytest.fixture
async def two_accounts() -> AsyncIterator[SaicTestServer]:
    server = SaicTestServer(SimulatedFleet(2, seed=1, command_latency=0))
    await server.add_account(SECOND, "second secret", SimulatedFleet(2, seed=2, command_latency=0, first=10))
    await server.start()
    yield server
    await server.stop()
