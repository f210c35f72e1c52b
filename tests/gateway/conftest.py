"""Fixtures of the gateway tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.saic_server import SaicTestServer
from tests.saic_server import two_accounts as two_account_server


@pytest.fixture
async def two_accounts() -> AsyncIterator[SaicTestServer]:
    async with two_account_server() as server:
        yield server
