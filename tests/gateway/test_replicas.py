"""Two gateway replicas share the accounts: each account is polled by exactly one of them, and when
one is killed with -9 its accounts move to the other within the sync interval."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from common.account_secrets import AccountCipher, AccountCipherSettings
from common.database import apply_migrations, create_pool
from common.settings import DatabaseSettings, MqttSettings
from tests.gateway.accounts import SECOND, add_account
from tests.helpers import wait_until
from tests.saic_server import SECOND_ACCOUNT, SaicTestServer

ROOT = Path(__file__).resolve().parents[2]
SYNC_INTERVAL = 1.0
SERVED = re.compile(r"account (\S+): served by this replica")


def replica_env(mqtt: MqttSettings, db: DatabaseSettings, key: str, name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAIC_", "MQTT_", "GATEWAY_", "ACCOUNTS_"))}
    passwords = {f"MQTT_{c.upper()}_PASSWORD": getattr(mqtt, f"{c}_password") for c in ("gateway",)}
    env |= {k: v.get_secret_value() for k, v in passwords.items() if v is not None}
    env |= {
        "MQTT_HOST": mqtt.host,
        "MQTT_PORT": str(mqtt.port),
        "DATABASE_URL": db.url.get_secret_value(),
        "ACCOUNTS_ENCRYPTION_KEY": key,
        "SAIC_READ_TIMEOUT": "2",
        "SAIC_SMS_DELIVERY_DELAY": "0.05",
        "SAIC_RATE_LIMIT": "0",
        "GATEWAY_POLL_INTERVAL": "0.5",
        "GATEWAY_ACCOUNT_SYNC_INTERVAL": str(SYNC_INTERVAL),
        "HA_DISCOVERY_ENABLED": "false",
        "INSTANCE_ID": name,
        "LOG_LEVEL": "INFO",
    }
    return env


def served(log: Path) -> set[str]:
    return set(SERVED.findall(log.read_text(errors="replace"))) if log.exists() else set()


async def test_two_replicas_share_the_accounts_and_one_takes_over_when_the_other_dies(
    private_mqtt: MqttSettings, db_settings: DatabaseSettings, two_accounts: SaicTestServer, tmp_path: Path
) -> None:
    server, key = two_accounts, Fernet.generate_key().decode()
    secrets = AccountCipher(AccountCipherSettings.from_env({"ACCOUNTS_ENCRYPTION_KEY": key}))
    pool = await create_pool(db_settings)
    await apply_migrations(pool)
    await pool.close()
    await add_account(db_settings, secrets, server.username, server.password, server.base_uri)
    await add_account(db_settings, secrets, *SECOND_ACCOUNT, server.base_uri)
    logs = {name: tmp_path / f"{name}.log" for name in ("replica-1", "replica-2")}
    processes = {
        name: subprocess.Popen(  # noqa: ASYNC220 - started once; the test's loop keeps serving SAIC meanwhile
            [sys.executable, "-m", "gateway"],
            cwd=ROOT,
            env=replica_env(private_mqtt, db_settings, key, name),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        for name, log in logs.items()
    }
    try:
        accounts = {server.username, SECOND}
        await wait_until(
            lambda: served(logs["replica-1"]) | served(logs["replica-2"]) == accounts,
            what="both accounts served",
            timeout=30,
        )
        await asyncio.sleep(3 * SYNC_INTERVAL)  # several rounds of both replicas trying to lease them
        assert not served(logs["replica-1"]) & served(logs["replica-2"]), "an account served twice"
        assert server.logins == 1  # one session each: two pollers would log each other out
        assert server.accounts[SECOND].logins == 1

        victim = "replica-1" if served(logs["replica-1"]) else "replica-2"
        survivor = "replica-2" if victim == "replica-1" else "replica-1"
        moving = served(logs[victim])
        status_calls = len(server.requests)
        processes[victim].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await wait_until(lambda: moving <= served(logs[survivor]), what="its accounts taken over", timeout=30)
        took = time.monotonic() - killed_at
        print(f"\n[failover] {sorted(moving)} moved to {survivor} {took:.1f} s after kill -9 of {victim}")
        assert took < 30

        def cars_polled_since_the_kill() -> int:
            return len({r.path for r in server.requests[status_calls:] if r.path.startswith("/vehicle/status?")})

        await wait_until(lambda: cars_polled_since_the_kill() == 4, what="every car of both accounts polled again")
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


pytestmark = pytest.mark.timeout(120)
