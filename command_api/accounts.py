"""SAIC accounts through the API: an operator (API key) manages every account; a frontend user
links their own MG account ("link my MG account") and manages the ones they linked.

The API never talks to SAIC itself: it stores the account `pending`, with the password encrypted
(common/account_secrets.py), and waits (ACCOUNT_VERIFY_WAIT) while a gateway replica leases it and
tries its first login (gateway/accounts.py). Accepted: 201, and a user who linked it sees its cars
(`vehicle_access`, while they are the account's). Refused: 422 with SAIC's reason, and nothing stays
stored. No answer yet: 202, and `GET /api/accounts/{id}` tells the outcome later.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import asyncpg
from aiohttp import web

from command_api import organizations
from command_api.auth import Principal
from command_api.errors import ApiError
from command_api.responses import json_response
from common.account_secrets import AccountCipher
from common.database import Connection

REGIONS = ("eu", "au", "tr", "maxus-eu")
BASE_URI = re.compile(r"^https?://.+/$")
MAX_USERNAME, MAX_PASSWORD = 320, 200
ACCOUNT_COLUMNS = (
    "id, username, region, base_uri, status, status_reason, linked_by, organization_id, created_at, updated_at"
)
VERIFY_POLL = 0.2


def account_json(row: asyncpg.Record) -> dict[str, Any]:
    """An account as the API shows it: never its password, encrypted or not."""
    account = dict(row)
    for key in ("linked_by", "organization_id"):
        account[key] = str(account[key]) if account[key] else None
    return account


def _text(body: dict[str, Any], name: str, limit: int, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ApiError(400, "invalid_account", f"{name} must be a non-empty string of at most {limit} characters")
    return value.strip() if name != "password" else value


def read_account(body: Any, *, creating: bool) -> dict[str, Any]:
    """The fields of a POST (all that are required) or a PATCH (any), validated."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_account", "expected a JSON object")
    unknown = set(body) - {"username", "password", "region", "base_uri", "organization_id"}
    if unknown or (not creating and "username" in body):
        extra = sorted(unknown) if unknown else ["username"]
        raise ApiError(400, "invalid_account", f"unexpected fields: {', '.join(extra)} (a username cannot change)")
    fields = {
        "username": _text(body, "username", MAX_USERNAME, required=creating),
        "password": _text(body, "password", MAX_PASSWORD, required=creating),
        "region": body.get("region", "eu" if creating else None),
        "base_uri": body.get("base_uri"),
        "organization_id": body.get("organization_id"),
    }
    if fields["organization_id"] is not None and not isinstance(fields["organization_id"], str):
        raise ApiError(400, "invalid_account", "organization_id must be an organization's id (a UUID)")
    if ("region" in body or creating) and fields["region"] not in REGIONS:
        raise ApiError(400, "invalid_account", f"region must be one of {', '.join(REGIONS)}")
    if fields["base_uri"] is not None and (
        not isinstance(fields["base_uri"], str) or not BASE_URI.match(fields["base_uri"])
    ):
        raise ApiError(400, "invalid_account", "base_uri must be an http(s) URL ending in /")
    if not creating and not any(v is not None for v in fields.values()):
        raise ApiError(400, "invalid_account", "nothing to change: give password, region, base_uri or organization_id")
    return fields


def require_cipher(cipher: AccountCipher | None) -> AccountCipher:
    if cipher is None:
        raise ApiError(503, "accounts_disabled", "accounts are not enabled here: set ACCOUNTS_ENCRYPTION_KEY")
    return cipher


def visible_to(principal: Principal, *, manage: bool = False) -> tuple[str, list[Any]]:
    """The SQL condition (and its argument) for the accounts a caller may see, or with `manage`
    change: those they linked, and their organizations' (to change: as an owner)."""
    if principal.kind == "service":
        return "TRUE", []
    roles = ["owner"] if manage else ["owner", "operator", "viewer"]
    return (
        "(linked_by = $1 OR organization_id IN"
        " (SELECT organization_id FROM memberships WHERE user_id = $1 AND role = ANY($2::text[])))",
        [principal.user_id, roles],
    )


async def list_accounts(conn: Connection, principal: Principal) -> dict[str, Any]:
    where, args = visible_to(principal)
    rows = await conn.fetch(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {where} ORDER BY id", *args)  # noqa: S608
    return {"accounts": [account_json(r) for r in rows]}


async def find_account(
    conn: Connection, principal: Principal, account_id: int, *, manage: bool = False
) -> asyncpg.Record:
    where, args = visible_to(principal, manage=manage)
    row = await conn.fetchrow(
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ${len(args) + 1} AND {where}",  # noqa: S608
        *args,
        account_id,
    )
    if row is None:
        raise ApiError(404, "not_found", f"no account {account_id} that this caller may see")
    return row


async def create_account(
    pool: asyncpg.Pool, cipher: AccountCipher, principal: Principal, fields: dict[str, Any], wait: float
) -> web.Response:
    async with pool.acquire() as conn:
        organization = fields["organization_id"]
        if organization is not None:
            organization = await organizations.require_owner(conn, principal, organization)
        try:
            account_id = await conn.fetchval(
                "INSERT INTO accounts (username, region, base_uri, password_encrypted, linked_by, organization_id)"
                " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                fields["username"],
                fields["region"],
                fields["base_uri"],
                cipher.encrypt(fields["password"]),
                principal.user_id,
                organization,
            )
        except asyncpg.UniqueViolationError:
            raise ApiError(409, "account_exists", f"the account {fields['username']} is already linked") from None
    return await _verified(pool, principal, account_id, wait, created=True)


async def update_account(
    pool: asyncpg.Pool,
    cipher: AccountCipher,
    principal: Principal,
    account_id: int,
    fields: dict[str, Any],
    wait: float,
) -> web.Response:
    async with pool.acquire() as conn:
        await find_account(conn, principal, account_id, manage=True)
        if fields["organization_id"] is not None:
            fields["organization_id"] = await organizations.require_owner(conn, principal, fields["organization_id"])
        changes = {k: v for k, v in fields.items() if v is not None and k != "password"}
        if fields["password"] is not None:
            changes["password_encrypted"] = cipher.encrypt(fields["password"])
        assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(changes, start=2))
        # A changed account is tried again from its first login, by whichever replica leases it.
        await conn.execute(
            f"UPDATE accounts SET {assignments}, status = 'pending', status_reason = NULL, updated_at = now()"  # noqa: S608
            " WHERE id = $1",
            account_id,
            *changes.values(),
        )
    return await _verified(pool, principal, account_id, wait, created=False)


async def _verified(
    pool: asyncpg.Pool, principal: Principal, account_id: int, wait: float, *, created: bool
) -> web.Response:
    deadline = time.monotonic() + wait
    while True:
        async with pool.acquire() as conn:
            row = await conn.fetchrow(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1", account_id)  # noqa: S608
            if row is None:
                raise ApiError(404, "not_found", f"account {account_id} was removed meanwhile")
            if row["status"] == "rejected":
                if created:
                    await conn.execute("DELETE FROM accounts WHERE id = $1", account_id)
                raise ApiError(422, "login_refused", f"SAIC refused the login: {row['status_reason']}")
            if row["status"] == "active":
                return json_response(account_json(row), status=201 if created else 200)
        if time.monotonic() >= deadline:
            return json_response(account_json(row), status=202)
        await asyncio.sleep(VERIFY_POLL)


async def delete_account(conn: Connection, principal: Principal, account_id: int) -> None:
    """The account and its cars' link to it go; the replica serving it stops at its next look."""
    await find_account(conn, principal, account_id, manage=True)
    await conn.execute("DELETE FROM accounts WHERE id = $1", account_id)
