"""Directly connected devices through the API: enrolment, the registry, revocation and versioned
configuration (migration 0015).

Devices belong to an organization. Its owners enrol and revoke them, owners and operators change
their configuration, every member reads them; an API key (an operator of the platform) does all of
it for every organization. Another organization's device is 404, as its organizations are.

Enrolment answers the device's secret once; only a Fernet token of it is stored. A configuration
change needs `If-Match` with the version it was based on (412 when another change came first),
is kept as a new version (the newest CONFIG_VERSIONS stay), and goes to the device retained on
`devices/<id>/config/update`; the device's answer on `config/status` (recorded by the ingest)
moves it from `pending` to `applied` or `failed`.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import asyncpg

from command_api import organizations
from command_api.auth import Principal
from command_api.errors import ApiError, json_object
from common import device_credentials, topics
from common.account_secrets import AccountCipher
from common.database import Connection

CONFIG_VERSIONS = 10
MAX_CONFIG_BYTES = 16 * 1024
MAX_NAME = 200
DEVICE_COLUMNS = (
    "device_id, mac, organization_id, name, firmware_version, online, last_seen, config_version, revoked_at, created_at"
)
ETAG = re.compile(r'^(?:W/)?"?(\d{1,9})"?$')

READ_ROLES = ["owner", "operator", "viewer"]
CONFIGURE_ROLES = ["owner", "operator"]
MANAGE_ROLES = ["owner"]


def device_json(row: asyncpg.Record) -> dict[str, Any]:
    device = dict(row)
    device["organization_id"] = str(device["organization_id"])
    return device


def require_cipher(cipher: AccountCipher | None) -> AccountCipher:
    if cipher is None:
        raise ApiError(503, "devices_disabled", "devices are not enabled here: set DEVICES_ENCRYPTION_KEY")
    return cipher


def read_enrolment(body: Any) -> dict[str, Any]:
    allowed = {"mac", "organization_id", "name", "firmware_version"}
    body = json_object(body, allowed, "invalid_device", "mac and organization_id")
    mac = body.get("mac")
    try:
        mac = device_credentials.normalize_mac(mac) if isinstance(mac, str) else None
    except ValueError as exc:
        raise ApiError(400, "invalid_device", str(exc)) from None
    if mac is None:
        raise ApiError(400, "invalid_device", "mac is required: six bytes in hex, e.g. 00:1a:2b:3c:4d:5e")
    organization = body.get("organization_id")
    if not isinstance(organization, str):
        raise ApiError(400, "invalid_device", "organization_id is required: the owning organization's id (a UUID)")
    for name, limit in (("name", MAX_NAME), ("firmware_version", 64)):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > limit):
            raise ApiError(400, "invalid_device", f"{name} must be a non-empty string of at most {limit} characters")
    return {
        "mac": mac,
        "organization_id": organization,
        "name": body.get("name"),
        "firmware_version": body.get("firmware_version"),
    }


def _visible(principal: Principal, roles: list[str], first: int = 1) -> tuple[str, list[Any]]:
    """The SQL condition (and its arguments, numbered from `first`) for the devices a caller may reach."""
    if principal.kind == "service":
        return "TRUE", []
    return (
        f"organization_id IN (SELECT organization_id FROM memberships WHERE user_id = ${first}"  # noqa: S608
        f" AND role = ANY(${first + 1}::text[]))",
        [principal.user_id, roles],
    )


def _device_id(text: str) -> str:
    if not topics.DEVICE_ID.match(text):
        raise ApiError(404, "not_found", f"no device {text[:40]!r}: a device id is 32 hex characters")
    return text


async def enrol(
    conn: Connection, cipher: AccountCipher, principal: Principal, fields: dict[str, Any]
) -> dict[str, Any]:
    """The new device with its secret: the only time the secret is shown."""
    role = await organizations.role_in(conn, principal, fields["organization_id"])  # 404 when not theirs
    if role not in MANAGE_ROLES:
        raise ApiError(403, "forbidden", "only the organization's owners enrol devices")
    device_id, secret = device_credentials.device_id_for(fields["mac"]), device_credentials.new_secret()
    try:
        row = await conn.fetchrow(
            "INSERT INTO devices (device_id, mac, organization_id, name, firmware_version, secret_encrypted)"  # noqa: S608
            f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {DEVICE_COLUMNS}",
            device_id,
            fields["mac"],
            uuid.UUID(fields["organization_id"]),
            fields["name"],
            fields["firmware_version"],
            cipher.encrypt(secret),
        )
    except asyncpg.UniqueViolationError:
        raise ApiError(409, "device_exists", f"a device with MAC {fields['mac']} is already enrolled") from None
    assert row is not None
    return device_json(row) | {"secret": secret}


async def list_devices(conn: Connection, principal: Principal, limit: int) -> dict[str, Any]:
    """The first `limit` devices (offline first: what needs looking at), and counts over all of them."""
    where, args = _visible(principal, READ_ROLES)
    rows = await conn.fetch(
        f"SELECT {DEVICE_COLUMNS} FROM devices WHERE {where}"  # noqa: S608
        f" ORDER BY revoked_at IS NOT NULL, online, created_at LIMIT ${len(args) + 1}",
        *args,
        limit,
    )
    counts = await conn.fetchrow(
        f"SELECT count(*) AS total, count(*) FILTER (WHERE online) AS online FROM devices WHERE {where}",  # noqa: S608
        *args,
    )
    assert counts is not None
    return {"devices": [device_json(r) for r in rows], "total": counts["total"], "online": counts["online"]}


async def find_device(
    conn: Connection, principal: Principal, device_id: str, roles: list[str] = READ_ROLES
) -> asyncpg.Record:
    where, args = _visible(principal, roles, first=2)
    row = await conn.fetchrow(
        f"SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = $1 AND {where}",  # noqa: S608
        _device_id(device_id),
        *args,
    )
    if row is not None:
        return row
    if roles is not READ_ROLES and await find_device(conn, principal, device_id):
        raise ApiError(403, "forbidden", f"this caller's role may not do that to device {device_id}")
    raise ApiError(404, "not_found", f"no device {device_id} that this caller may see")


async def revoke(conn: Connection, principal: Principal, device_id: str) -> dict[str, Any]:
    """The device may not connect again, and the edge holding its connection closes it (the
    `device_revoked` notification); its record and history stay."""
    await find_device(conn, principal, device_id, MANAGE_ROLES)
    row = await conn.fetchrow(
        f"UPDATE devices SET revoked_at = COALESCE(revoked_at, now()), online = false WHERE device_id = $1"  # noqa: S608
        f" RETURNING {DEVICE_COLUMNS}",
        device_id,
    )
    assert row is not None
    return device_json(row)


async def telemetry(conn: Connection, principal: Principal, device_id: str, limit: int) -> dict[str, Any]:
    await find_device(conn, principal, device_id)
    rows = await conn.fetch(
        "SELECT ts, payload::text AS payload FROM device_telemetry WHERE device_id = $1 ORDER BY ts DESC LIMIT $2",
        device_id,
        limit,
    )
    return {"device_id": device_id, "readings": [{"ts": r["ts"], "payload": json.loads(r["payload"])} for r in rows]}


# -- configuration -------------------------------------------------------------------------------

CONFIG_COLUMNS = "version, config::text AS config, changed_by, changed_at, status, status_reason, status_at"


def _config_json(row: asyncpg.Record) -> dict[str, Any]:
    return dict(row) | {"config": json.loads(row["config"])}


async def get_config(conn: Connection, principal: Principal, device_id: str) -> tuple[dict[str, Any], int]:
    """The current configuration and the versions kept before it, newest first; and the version."""
    device = await find_device(conn, principal, device_id)
    rows = await conn.fetch(
        f"SELECT {CONFIG_COLUMNS} FROM device_configs WHERE device_id = $1 ORDER BY version DESC",  # noqa: S608
        device_id,
    )
    versions = [_config_json(r) for r in rows]
    current = versions[0] if versions else None
    body = {
        "device_id": device_id,
        "version": device["config_version"],
        "config": current["config"] if current else {},
        "status": current["status"] if current else None,
        "versions": versions,
    }
    return body, device["config_version"]


def read_if_match(header: str | None) -> int | None:
    """The version a change was based on; None for `*` (any)."""
    if header is None:
        raise ApiError(
            428, "precondition_required", 'If-Match is required: the version the change is based on, e.g. "3"'
        )
    if header.strip() == "*":
        return None
    match = ETAG.match(header.strip())
    if match is None:
        raise ApiError(400, "invalid_if_match", 'If-Match must be a configuration version, e.g. "3", or *')
    return int(match.group(1))


def read_config(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_CONFIG_BYTES:
        raise ApiError(413, "config_too_large", f"a configuration is at most {MAX_CONFIG_BYTES} bytes of JSON")
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(config, dict):
        raise ApiError(400, "invalid_config", "a configuration is a JSON object")
    return config


async def put_config(
    conn: Connection, principal: Principal, device_id: str, based_on: int | None, config: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """Stores the new version (in the caller's transaction) and returns what to send the device."""
    device = await find_device(conn, principal, device_id, CONFIGURE_ROLES)
    if device["revoked_at"] is not None:
        raise ApiError(409, "device_revoked", f"device {device_id} is revoked: it takes no configuration")
    current = await conn.fetchval("SELECT config_version FROM devices WHERE device_id = $1 FOR UPDATE", device_id)
    if based_on is not None and based_on != current:
        raise ApiError(
            412,
            "version_mismatch",
            f"the configuration is at version {current}, not {based_on}: read it again and reapply the change",
        )
    version = current + 1
    await conn.execute(
        "INSERT INTO device_configs (device_id, version, config, changed_by) VALUES ($1, $2, $3, $4)",
        device_id,
        version,
        json.dumps(config),
        principal.requested_by,
    )
    await conn.execute("UPDATE devices SET config_version = $2 WHERE device_id = $1", device_id, version)
    await conn.execute(
        "DELETE FROM device_configs WHERE device_id = $1 AND version <= $2", device_id, version - CONFIG_VERSIONS
    )
    return {"version": version, "config": config}, version
