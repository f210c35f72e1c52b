"""Two SAIC accounts added through the API of the whole backend (supervisord.conf), against the SAIC
test server: both polled, a command on each, then one account's password changes in the app: it
alerts and backs off while the other keeps flowing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from cryptography.fernet import Fernet

from tests.helpers import wait_until
from tests.saic_server import SECOND_ACCOUNT, SaicTestServer, two_accounts
from tests.test_e2e import API_KEY, Stack, launch_stack

pytestmark = pytest.mark.e2e

SECOND, SECOND_PASSWORD = SECOND_ACCOUNT
FIRST_CAR, SECOND_CAR = "LSJTEST0000000001", "LSJTEST0000000011"


@pytest.fixture(scope="module")
def accounts_stack(tmp_path_factory: pytest.TempPathFactory, postgres: object) -> Iterator[Stack]:
    settings = {
        "ACCOUNTS_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "GATEWAY_ACCOUNT_SYNC_INTERVAL": "1",
        "GATEWAY_POLL_INTERVAL": "2",
        "SAIC_RATE_LIMIT": "0",
        "SAIC_READ_TIMEOUT": "3",
        "SAIC_SMS_DELIVERY_DELAY": "0.1",
        "SAIC_RELOGIN_DELAY": "1",
    }
    yield from launch_stack(tmp_path_factory, postgres, settings)


@pytest.fixture
async def saic() -> AsyncIterator[SaicTestServer]:
    async with two_accounts(cars=1) as server:
        yield server


async def call(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.request(method, url, headers={"X-API-Key": API_KEY}, **kwargs) as response:
        return response.status, await response.json()


async def test_two_accounts_through_the_api(accounts_stack: Stack, saic: SaicTestServer) -> None:
    stack = accounts_stack
    async with aiohttp.ClientSession() as http:
        ids = {}
        for username, password in ((saic.username, saic.password), (SECOND, SECOND_PASSWORD)):
            body = {"username": username, "password": password, "base_uri": saic.base_uri}
            status, account = await call(http, "POST", f"{stack.api}/api/accounts", json=body)
            assert status == 201, account
            ids[username] = account["id"]

        async def state_time(vin: str) -> datetime | None:
            value = await stack.fetchval(f"SELECT ts FROM vehicle_state WHERE vin = '{vin}'")
            return value if isinstance(value, datetime) else None

        async def both_stored() -> bool:
            return all([await state_time(FIRST_CAR), await state_time(SECOND_CAR)])

        await wait_until(both_stored, timeout=30, what="both accounts' cars polled and stored")

        for vin in (FIRST_CAR, SECOND_CAR):
            status, command = await call(http, "POST", f"{stack.api}/api/vehicles/{vin}/commands/lock?wait=20")
            assert (status, command["status"]) == (200, "succeeded"), command
        assert saic.fleet.vehicle(FIRST_CAR).locked
        assert saic.accounts[SECOND].fleet.vehicle(SECOND_CAR).locked

        # The second account's password changes in the app (which also ends the gateway's session).
        saic.accounts[SECOND].password, saic.accounts[SECOND].token = "changed in the app", None

        async def second_failing() -> bool:
            _, account = await call(http, "GET", f"{stack.api}/api/accounts/{ids[SECOND]}")
            return bool(account["status"] == "failing")

        await wait_until(second_failing, timeout=30, what="the second account marked failing")

        async def alerted() -> bool:
            _, alerts = await call(http, "GET", f"{stack.api}/api/ops/alerts")
            return any(a.get("alert") == f"account:{SECOND}" for a in alerts["active"])

        await wait_until(alerted, timeout=15, what="the alert in the console's list")
        before = await state_time(FIRST_CAR)
        logins = saic.accounts[SECOND].logins

        async def first_flowing() -> bool:
            now = await state_time(FIRST_CAR)
            return now is not None and before is not None and now > before

        await wait_until(first_flowing, timeout=20, what="the first account's readings still arriving")
        await asyncio.sleep(2)
        assert saic.accounts[SECOND].logins <= logins + 1  # backing off, not hammering SAIC
