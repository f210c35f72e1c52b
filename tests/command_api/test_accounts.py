"""SAIC accounts through the API: "link my MG account" with the login verified by a gateway replica
against the SAIC test server, who may see and change which account, and bad input."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest
from cryptography.fernet import Fernet

from command_api.settings import ApiSettings
from common.account_secrets import AccountCipher, AccountCipherSettings
from common.settings import DatabaseSettings, MqttSettings
from gateway.accounts import AccountSupervisor
from gateway.hub import GatewayHub
from gateway.settings import GatewaySettings
from tests.command_api.conftest import ALICE, BOB, SERVICE_KEY, Client, secured_api, user_token
from tests.saic_server import SECOND_ACCOUNT, SaicTestServer, two_accounts

KEY = Fernet.generate_key().decode()
SECOND = SECOND_ACCOUNT[0]


@pytest.fixture
async def saic() -> AsyncIterator[SaicTestServer]:
    async with two_accounts() as server:
        yield server


@contextlib.asynccontextmanager
async def gateway_replica(mqtt: MqttSettings, db: DatabaseSettings, saic: SaicTestServer) -> AsyncIterator[None]:
    environ = {k: v for k, v in saic.env().items() if k not in ("SAIC_USERNAME", "SAIC_PWD", "SAIC_BASE_URI")}
    environ |= {"GATEWAY_POLL_INTERVAL": "1", "GATEWAY_ACCOUNT_SYNC_INTERVAL": "0.2", "HA_DISCOVERY_ENABLED": "false"}
    settings = GatewaySettings.from_env(environ)
    cipher = AccountCipher(AccountCipherSettings.from_env({"ACCOUNTS_ENCRYPTION_KEY": KEY}))
    supervisor = AccountSupervisor(GatewayHub(settings, mqtt), settings, mqtt, db, cipher, environ)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.fixture
async def api_with_accounts(
    mqtt_settings: MqttSettings, seeded: DatabaseSettings, saic: SaicTestServer
) -> AsyncIterator[Client]:
    env = {"ACCOUNTS_ENCRYPTION_KEY": KEY, "ACCOUNT_VERIFY_WAIT": "15"}
    async with secured_api(mqtt_settings, seeded, **env) as client, gateway_replica(mqtt_settings, seeded, saic):
        yield client


async def test_a_user_links_their_mg_account_and_sees_its_cars(
    api_with_accounts: Client, saic: SaicTestServer, seeded: DatabaseSettings
) -> None:
    api, alice = api_with_accounts, user_token(ALICE)
    body = {"username": saic.username, "password": saic.password, "base_uri": saic.base_uri}
    status, account, _ = await api.call("POST", "/api/accounts", token=alice, json=body)
    assert status == 201, account
    assert account["status"] == "active"
    assert account["linked_by"] == str(ALICE)
    assert not {"password", "password_encrypted"} & account.keys()
    status, cars, _ = await api.call("GET", "/api/vehicles", token=alice)
    assert {v["vin"] for v in cars["vehicles"]} >= {"LSJTEST0000000001", "LSJTEST0000000002"}  # and her own

    _, health, _ = await api.call("GET", "/api/health")
    assert health["accounts"] == {"active": 1}  # counted, never named: the probe is open

    # A wrong password: 422 with SAIC's reason, and nothing kept.
    wrong = {"username": SECOND, "password": "not it", "base_uri": saic.base_uri}
    status, problem, _ = await api.call("POST", "/api/accounts", token=alice, json=wrong)
    assert status == 422, problem
    assert "Incorrect password" in problem["error"]["message"]
    _, listed, _ = await api.call("GET", "/api/accounts", key=SERVICE_KEY)
    assert [a["username"] for a in listed["accounts"]] == [saic.username]

    # Linking the same account twice is a conflict, not a second copy.
    status, _, _ = await api.call("POST", "/api/accounts", token=alice, json=body)
    assert status == 409

    # Bob sees none of Alice's accounts, and cannot change or remove them.
    bob, path = user_token(BOB), f"/api/accounts/{account['id']}"
    _, bobs, _ = await api.call("GET", "/api/accounts", token=bob)
    assert bobs["accounts"] == []
    attempts: list[tuple[str, dict[str, str] | None]] = [("GET", None), ("PATCH", {"password": "x"}), ("DELETE", None)]
    for method, change in attempts:
        status, _, _ = await api.call(method, path, token=bob, json=change)
        assert status == 404, method

    # A car that leaves the account (sold) is no longer hers: her access follows the account's, it is
    # no lasting copy.
    conn = await asyncpg.connect(seeded.url.get_secret_value())
    try:
        await conn.execute("UPDATE account_vehicles SET until = now() WHERE vin = 'LSJTEST0000000002'")
    finally:
        await conn.close()
    status, _, _ = await api.call("GET", "/api/vehicles/LSJTEST0000000002", token=alice)
    assert status == 403
    status, _, _ = await api.call("GET", "/api/vehicles/LSJTEST0000000001", token=alice)
    assert status == 200

    # An operator removes it.
    status, _, _ = await api.call("DELETE", path, key=SERVICE_KEY)
    assert status == 204
    status, _, _ = await api.call("GET", path, token=alice)
    assert status == 404


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"username": "a@example.com"}, "password must be a non-empty string"),
        ({"username": "", "password": "x"}, "username must be a non-empty string"),
        ({"username": "a@example.com", "password": "x", "region": "mars"}, "region must be one of"),
        (
            {"username": "a@example.com", "password": "x", "region": None},
            "region must be one of",
        ),  # found by schemathesis
        ({"username": "a@example.com", "password": "x", "base_uri": "ftp://x"}, "base_uri must be"),
        ({"username": "a@example.com", "password": "x", "admin": True}, "unexpected fields: admin"),
        (["a list"], "expected a JSON object"),
    ],
)
async def test_a_bad_account_is_refused_with_the_reason(api_with_accounts: Client, body: object, problem: str) -> None:
    status, answer, _ = await api_with_accounts.call("POST", "/api/accounts", key=SERVICE_KEY, json=body)
    assert status == 400
    assert problem in answer["error"]["message"]


async def test_without_a_key_there_are_no_accounts(mqtt_settings: MqttSettings, seeded: DatabaseSettings) -> None:
    async with secured_api(mqtt_settings, seeded) as api:
        body = {"username": "a@example.com", "password": "x"}
        status, answer, _ = await api.call("POST", "/api/accounts", key=SERVICE_KEY, json=body)
    assert status == 503
    assert "ACCOUNTS_ENCRYPTION_KEY" in answer["error"]["message"]


def test_a_bad_key_stops_the_api_at_start() -> None:
    from aiohttp import web

    from command_api.routes import add_routes

    settings = ApiSettings.from_env({"ACCOUNTS_ENCRYPTION_KEY": "not a key"})
    with pytest.raises(Exception, match="32 url-safe base64-encoded bytes"):
        add_routes(web.Application(), settings)
