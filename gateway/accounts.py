"""Many SAIC accounts in one gateway process, and many processes sharing them.

The accounts come from the `accounts` table (added and removed through the API at run time) and
from SAIC_USERNAME/SAIC_PWD, the first account. Every GATEWAY_ACCOUNT_SYNC_INTERVAL the
supervisor reads the table and takes the lease (gateway/leases.py) of each account no replica
serves, then runs a Gateway for it on the shared hub. A new account's first login decides it:
`active`, or `rejected` with SAIC's reason (and it is not polled). An account whose login SAIC
later refuses (its password changed in the app) is marked `failing` and alerted once; its session
backs off (up to 15 minutes between attempts) and the other accounts go on untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

import asyncpg
from saic_ismart_client_ng.exceptions import SaicApiException

from common.account_secrets import AccountCipher, CipherError
from common.database import DATABASE_ERRORS, apply_migrations, create_pool
from common.settings import DatabaseSettings, MqttSettings
from gateway.app import Gateway
from gateway.hub import GatewayHub
from gateway.leases import AccountLease
from gateway.saic.guards import CircuitOpen
from gateway.saic.http import saic_api
from gateway.saic.session import SaicSession, is_api_failure
from gateway.saic.settings import SaicSettings
from gateway.saic.source import SaicVehicleSource
from gateway.settings import GatewaySettings
from gateway.source import VehicleInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredAccount:
    username: str
    password: str
    region: str
    base_uri: str | None
    status: str
    stored_as: str
    """The encrypted password as stored: a change means the account was updated, and is restarted."""


@dataclass
class RunningAccount:
    account: StoredAccount
    lease: AccountLease
    session: SaicSession
    gateway: Gateway
    stop: asyncio.Event
    task: asyncio.Task[None]


class AccountSupervisor:
    def __init__(
        self,
        hub: GatewayHub,
        settings: GatewaySettings,
        mqtt_settings: MqttSettings,
        database: DatabaseSettings,
        cipher: AccountCipher,
        environ: Mapping[str, str],
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.mqtt_settings = mqtt_settings
        self.database = database
        self.cipher = cipher
        self.environ = environ
        self.running: dict[str, RunningAccount] = {}
        self._pool: asyncpg.Pool | None = None
        self._own_account = self._environment_account()

    def _environment_account(self) -> StoredAccount | None:
        """SAIC_USERNAME/SAIC_PWD, the first account, served (and leased) like the table's."""
        if self.settings.saic_password is None:
            return None
        saic = SaicSettings.from_env(dict(self.environ))
        password = saic.password.get_secret_value()
        return StoredAccount(saic.username, password, saic.region, saic.base_uri, "active", stored_as="environment")

    async def run(self, stop: asyncio.Event) -> None:
        hub_stop = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(self.hub.run(hub_stop))
            self._pool = await self._connect(stop)
            try:
                while not stop.is_set():
                    await self.sync()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.settings.account_sync_interval)
            finally:
                await asyncio.gather(*(self._stop(name) for name in list(self.running)))
                if self._pool is not None:
                    await self._pool.close()
                hub_stop.set()

    async def _connect(self, stop: asyncio.Event) -> asyncpg.Pool | None:
        while not stop.is_set():
            try:
                pool = await create_pool(self.database, min_size=1, max_size=2)
                await apply_migrations(pool)
                return pool
            except DATABASE_ERRORS as exc:
                log.error("the accounts' database is unreachable (%s); retrying in 5 s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)
        return None

    async def _stored_accounts(self) -> dict[str, StoredAccount] | None:
        """The accounts to serve; None when the table cannot be read (keep serving what runs)."""
        assert self._pool is not None
        try:
            rows = await self._pool.fetch(
                "SELECT username, region, base_uri, password_encrypted, status FROM accounts"
                " WHERE status <> 'rejected' ORDER BY id"
            )
        except DATABASE_ERRORS as exc:
            log.error("cannot read the accounts (%s): the running ones go on", exc)
            return None
        accounts: dict[str, StoredAccount] = {}
        if self._own_account is not None:
            accounts[self._own_account.username] = self._own_account
        for row in rows:
            try:
                password = self.cipher.decrypt(row["password_encrypted"])
            except CipherError as exc:
                log.error("account %s: %s", row["username"], exc)
                continue
            accounts[row["username"]] = StoredAccount(
                row["username"], password, row["region"], row["base_uri"], row["status"], row["password_encrypted"]
            )
        return accounts

    async def sync(self) -> None:
        accounts = await self._stored_accounts()
        for name, running in list(self.running.items()):
            gone = accounts is not None and (
                name not in accounts or accounts[name].stored_as != running.account.stored_as
            )
            if running.task.done() and not running.task.cancelled() and running.task.exception() is not None:
                log.error(
                    "account %s stopped on an error; it is started again", name, exc_info=running.task.exception()
                )
            if gone or running.task.done() or not await running.lease.check():
                log.info("account %s: no longer served here (%s)", name, "removed or changed" if gone else "lease lost")
                await self._stop(name)
            else:
                await self._watch_login(running)
        # Together: one account's slow first login (an API timing out) never holds up another's start.
        await asyncio.gather(*(self._start(a) for name, a in (accounts or {}).items() if name not in self.running))
        self.hub.metrics.accounts_served.set(len(self.running))

    async def _start(self, account: StoredAccount) -> None:
        lease = await AccountLease.take(self.database.url.get_secret_value(), account.username)
        if lease is None:
            return  # another replica serves it
        saic = SaicSettings.for_account(
            self.environ, account.username, account.password, account.region, account.base_uri
        )
        session = SaicSession(saic_api(saic), saic, self.hub.metrics)
        source = SaicVehicleSource(session, saic.max_status_drift, saic.schedule_refresh)
        serve, cars = await self._login_and_record_cars(account, source)
        if not serve:
            await source.close()
            await lease.release()
            return
        settings = self.settings.model_copy(update={"account": account.username, "saic_password": saic.password})
        gateway = Gateway(settings, self.mqtt_settings, source, hub=self.hub)
        stop = asyncio.Event()
        task = asyncio.create_task(self._serve(gateway, cars, lease, stop), name=f"account {account.username}")
        self.running[account.username] = RunningAccount(account, lease, session, gateway, stop, task)
        log.info("account %s: served by this replica", account.username)

    @staticmethod
    async def _serve(
        gateway: Gateway, cars: list[VehicleInfo] | None, lease: AccountLease, stop: asyncio.Event
    ) -> None:
        """Run the account until told to stop, or at once when its lease is lost: another replica
        may take it next, and SAIC allows one session per account."""

        async def stop_when_lost() -> None:
            await lease.lost.wait()
            log.error("account %s: its lease is lost, so it stops here now", gateway.settings.account)
            stop.set()

        watcher = asyncio.create_task(stop_when_lost())
        try:
            await gateway.run(stop, cars)
        finally:
            watcher.cancel()

    async def _login_and_record_cars(
        self, account: StoredAccount, source: SaicVehicleSource
    ) -> tuple[bool, list[VehicleInfo] | None]:
        """The account's cars as SAIC lists them now, recorded (`account_vehicles`: a car new to it
        is its organization's from now on, a car no longer on it, sold, is no longer). A new account's
        first login decides it: `active`, or `rejected` with SAIC's reason.

        Returns whether to serve it, and its cars for its Gateway (None: not listed, it lists them)."""
        try:
            cars = await source.vehicles()
        except (SaicApiException, CircuitOpen) as exc:
            if account.status != "pending":
                log.warning("account %s: its cars are not listed now (%s); serving it as it was", account.username, exc)
                return True, None  # its Gateway lists them itself, with backoff
            if isinstance(exc, SaicApiException) and not is_api_failure(exc):
                await self._set_status(account.username, "rejected", str(exc))
            else:
                log.warning("account %s: its first login waits for the SAIC API (%s)", account.username, exc)
            return False, None
        assert self._pool is not None  # run() connects first
        vins = [car.vin for car in cars]
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.executemany(
                    "INSERT INTO vehicles (vin, account, brand, model) VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT (vin) DO UPDATE SET account = EXCLUDED.account",
                    [(car.vin, account.username, car.brand, car.model) for car in cars],
                )
                # A car new to the account (or back to it) is its own from now on; one gone from it
                # (sold) is ended now: its organization keeps its past, not its future.
                await conn.execute(
                    "INSERT INTO account_vehicles (account_id, vin)"
                    " SELECT id, unnest($2::text[]) FROM accounts WHERE username = $1"
                    " ON CONFLICT (account_id, vin) DO UPDATE SET since = now(), until = NULL"
                    " WHERE account_vehicles.until IS NOT NULL",
                    account.username,
                    vins,
                )
                await conn.execute(
                    "UPDATE account_vehicles v SET until = now() FROM accounts a WHERE a.id = v.account_id"
                    " AND a.username = $1 AND v.until IS NULL AND NOT v.vin = ANY($2::text[])",
                    account.username,
                    vins,
                )
        except DATABASE_ERRORS as exc:
            log.error("account %s: cannot record its cars (%s); tried again at its next start", account.username, exc)
            return account.status != "pending", cars
        if account.status == "pending":
            await self._set_status(account.username, "active", None)
        return True, cars

    async def _watch_login(self, running: RunningAccount) -> None:
        name, refused = running.account.username, running.session.login_refused
        if refused is not None and running.account.status != "failing":
            running.account = replace(running.account, status="failing")
            await self._set_status(name, "failing", refused)
            await self.hub.alerts.fire(
                f"account:{name}", f"SAIC refuses the login of {name} ({refused}): its password may have changed"
            )
        elif refused is None and running.account.status == "failing" and running.session.api.is_logged_in:
            running.account = replace(running.account, status="active")
            await self._set_status(name, "active", None)
            await self.hub.alerts.clear(f"account:{name}", f"{name} logs in again")

    async def _set_status(self, username: str, status: str, reason: str | None) -> None:
        assert self._pool is not None
        try:
            await self._pool.execute(
                "UPDATE accounts SET status = $2, status_reason = $3, updated_at = now() WHERE username = $1",
                username,
                status,
                reason,
            )
        except DATABASE_ERRORS as exc:
            log.error("cannot record account %s as %s: %s", username, status, exc)

    async def _stop(self, name: str) -> None:
        running = self.running.pop(name)
        running.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running.task, 30)
        await running.lease.release()
