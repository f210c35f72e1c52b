"""Many SAIC accounts in one gateway: each from the `accounts` table, each independent, against the
SAIC test server holding several accounts (each with its own cars and single live token)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet

from common import topics
from common.account_secrets import AccountCipher, AccountCipherSettings, CipherError
from common.database import apply_migrations, create_pool
from common.settings import DatabaseSettings, MqttSettings, SettingsError
from gateway.accounts import AccountSupervisor
from gateway.hub import GatewayHub
from gateway.settings import GatewaySettings
from tests.gateway.accounts import SECOND, account_status, add_account, cipher
from tests.helpers import client, collect, wait_until
from tests.saic_server import SECOND_ACCOUNT, SaicTestServer


@contextlib.asynccontextmanager
async def running_supervisor(
    mqtt_settings: MqttSettings, db: DatabaseSettings, secrets: AccountCipher, server: SaicTestServer
) -> AsyncIterator[AccountSupervisor]:
    environ = {k: v for k, v in server.env().items() if k not in ("SAIC_USERNAME", "SAIC_PWD", "SAIC_BASE_URI")}
    environ |= {"GATEWAY_POLL_INTERVAL": "0.3", "GATEWAY_ACCOUNT_SYNC_INTERVAL": "0.2", "SAIC_RELOGIN_DELAY": "0.2"}
    settings = GatewaySettings.from_env(environ)
    supervisor = AccountSupervisor(GatewayHub(settings, mqtt_settings), settings, mqtt_settings, db, secrets, environ)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    try:
        yield supervisor
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_each_account_is_served_on_its_own(
    private_mqtt: MqttSettings, db_settings: DatabaseSettings, two_accounts: SaicTestServer
) -> None:
    server, secrets = two_accounts, cipher()
    pool = await create_pool(db_settings)
    await apply_migrations(pool)
    await pool.close()
    await add_account(db_settings, secrets, server.username, server.password, server.base_uri)
    await add_account(db_settings, secrets, *SECOND_ACCOUNT, server.base_uri)
    await add_account(db_settings, secrets, "wrong@example.com", "not it", server.base_uri)
    async with running_supervisor(private_mqtt, db_settings, secrets, server) as supervisor:
        await wait_until(lambda: len(supervisor.running) == 2, what="both accounts served")
        first, second = supervisor.running[server.username], supervisor.running[SECOND]
        await wait_until(lambda: first.gateway.polls >= 2 and second.gateway.polls >= 2, what="polls of both")
        statuses = await account_status(db_settings)
        assert statuses[server.username] == ("active", None)
        assert statuses[SECOND] == ("active", None)
        # A wrong password: refused with SAIC's reason at its first login, and never polled.
        assert statuses["wrong@example.com"][0] == "rejected"
        assert "Incorrect password" in (statuses["wrong@example.com"][1] or "")

        # A command on each account reaches that account's car.
        async with client(private_mqtt, "api") as api:
            for account, vin in ((server.username, "LSJTEST0000000001"), (SECOND, "LSJTEST0000000011")):
                root = topics.VehicleTopics("saic", account, vin).root
                await api.subscribe(f"{root}/cmd/lock/result", qos=1)
                await api.publish(f"{root}/cmd/lock", json.dumps({"id": str(uuid.uuid4()), "args": {}}), qos=1)
                results = [json.loads(m.payload) for m in await collect(api, 2, timeout=15)]  # running, then done
                assert results[-1]["status"] == "succeeded", results
        assert server.fleet.vehicle("LSJTEST0000000001").locked
        assert server.accounts[SECOND].fleet.vehicle("LSJTEST0000000011").locked

        # The second account's password changes in the app: it fails and alerts, the first goes on.
        server.accounts[SECOND].password, server.accounts[SECOND].token = "changed in the app", None
        await wait_until(
            lambda: any(a == f"account:{SECOND}" for a in supervisor.hub.alerts.active), what="the alert", timeout=15
        )
        polls = first.gateway.polls
        await wait_until(lambda: first.gateway.polls >= polls + 3, what="the first account still polled")
        statuses = await account_status(db_settings)
        assert statuses[SECOND][0] == "failing"
        assert "Incorrect password" in (statuses[SECOND][1] or "")
        firings = [e for e in supervisor.hub.alerts.recent if e["alert"] == f"account:{SECOND}"]
        assert len(firings) == 1  # alerted once, however often the login is retried
        logins = server.accounts[SECOND].logins
        await asyncio.sleep(1.0)
        assert server.accounts[SECOND].logins == logins  # backing off, not hammering SAIC


def test_a_password_is_stored_encrypted_and_opens_only_with_its_key() -> None:
    key = Fernet.generate_key().decode()
    token = cipher(key).encrypt("correct horse")
    assert "correct horse" not in token
    assert cipher(key).decrypt(token) == "correct horse"
    assert cipher(f"{Fernet.generate_key().decode()},{key}").decrypt(token) == "correct horse"  # key rotation
    with pytest.raises(CipherError, match="none of ACCOUNTS_ENCRYPTION_KEY's keys"):
        cipher().decrypt(token)
    with pytest.raises(SettingsError, match="32 url-safe base64-encoded bytes"):
        AccountCipherSettings.from_env({"ACCOUNTS_ENCRYPTION_KEY": "too short"})


async def test_a_car_that_leaves_an_account_leaves_its_organization(
    private_mqtt: MqttSettings, db_settings: DatabaseSettings, two_accounts: SaicTestServer
) -> None:
    """Each start lists the account's cars again: a car sold (gone from the account) is ended there
    (`until`), so its organization keeps its past and not its future; a car that stays keeps its `since`."""
    server, secrets = two_accounts, cipher()
    pool = await create_pool(db_settings)
    await apply_migrations(pool)
    await add_account(db_settings, secrets, *SECOND_ACCOUNT, server.base_uri)

    async def cars() -> dict[str, object]:
        """The account's cars now, with when each became its."""
        rows = await pool.fetch("SELECT vin, since FROM account_vehicles WHERE until IS NULL ORDER BY vin")
        return {r["vin"]: r["since"] for r in rows}

    try:
        async with running_supervisor(private_mqtt, db_settings, secrets, server) as supervisor:
            await wait_until(lambda: SECOND in supervisor.running, what="the account served")
            before = await cars()
            assert set(before) == {"LSJTEST0000000011", "LSJTEST0000000012"}
            server.accounts[SECOND].fleet._vehicles.pop("LSJTEST0000000012")  # sold
            # Saved again (as PATCH /api/accounts does): the account restarts and lists its cars.
            await pool.execute("UPDATE accounts SET password_encrypted = $1", secrets.encrypt(SECOND_ACCOUNT[1]))

            async def sold_car_gone() -> bool:
                return set(await cars()) == {"LSJTEST0000000011"}

            await wait_until(sold_car_gone, what="the sold car no longer the account's")
            assert (await cars())["LSJTEST0000000011"] == before["LSJTEST0000000011"]
            # Its past stays the organization's: the row is ended, not removed.
            ended = await pool.fetchrow("SELECT since, until FROM account_vehicles WHERE vin = 'LSJTEST0000000012'")
            assert ended is not None
            assert ended["since"] == before["LSJTEST0000000012"] < ended["until"]
    finally:
        await pool.close()
