"""Helpers of the accounts tests: the accounts table, filled as the API fills it."""

from __future__ import annotations

import asyncpg
from cryptography.fernet import Fernet

from common.account_secrets import AccountCipher, AccountCipherSettings
from common.settings import DatabaseSettings
from tests.saic_server import SECOND_ACCOUNT

SECOND = SECOND_ACCOUNT[0]


def cipher(key: str | None = None) -> AccountCipher:
    return AccountCipher(
        AccountCipherSettings.from_env({"ACCOUNTS_ENCRYPTION_KEY": key or Fernet.generate_key().decode()})
    )


async def add_account(
    db: DatabaseSettings, secrets: AccountCipher, username: str, password: str, base_uri: str
) -> None:
    connection = await asyncpg.connect(db.url.get_secret_value())
    try:
        await connection.execute(
            "INSERT INTO accounts (username, base_uri, password_encrypted) VALUES ($1, $2, $3)",
            username,
            base_uri,
            secrets.encrypt(password),
        )
    finally:
        await connection.close()


async def account_status(db: DatabaseSettings) -> dict[str, tuple[str, str | None]]:
    connection = await asyncpg.connect(db.url.get_secret_value())
    try:
        rows = await connection.fetch("SELECT username, status, status_reason FROM accounts")
    finally:
        await connection.close()
    return {r["username"]: (r["status"], r["status_reason"]) for r in rows}
