"""Organizations (tenants) and their members' roles: `owner` manages the organization's members and
SAIC accounts, `operator` sends commands to its cars, `viewer` reads them (migration 0014).

A user creates an organization and becomes its owner; an API key (an operator of the platform)
sees and manages every organization. An organization that is not the caller's is 404, never 403:
its existence is not theirs to learn.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from command_api.auth import Principal
from command_api.errors import ApiError
from common.database import Connection

ROLES = ("owner", "operator", "viewer")
MAX_NAME = 200


def _uuid(text: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ApiError(404, "not_found", f"no {what} {text[:60]!r}") from None


async def role_in(conn: Connection, principal: Principal, organization: str) -> str:
    """The caller's role in the organization (an API key: owner); 404 when it is not theirs."""
    org_id = _uuid(organization, "organization")
    if principal.user_id is None:
        exists = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)", org_id)
        role = "owner" if exists else None
    else:
        role = await conn.fetchval(
            "SELECT role FROM memberships WHERE organization_id = $1 AND user_id = $2", org_id, principal.user_id
        )
    if role is None:
        raise ApiError(404, "not_found", f"no organization {organization} that this caller belongs to")
    return str(role)


async def require_owner(conn: Connection, principal: Principal, organization: str) -> uuid.UUID:
    if await role_in(conn, principal, organization) != "owner":
        raise ApiError(403, "forbidden", "only the organization's owners manage its members and accounts")
    return uuid.UUID(organization)


def organization_json(row: asyncpg.Record) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in dict(row).items()}


async def list_organizations(conn: Connection, principal: Principal) -> dict[str, Any]:
    if principal.user_id is None:
        rows = await conn.fetch("SELECT id, name, created_at, 'owner' AS role FROM organizations ORDER BY created_at")
    else:
        rows = await conn.fetch(
            "SELECT o.id, o.name, o.created_at, m.role FROM organizations o"
            " JOIN memberships m ON m.organization_id = o.id AND m.user_id = $1 ORDER BY o.created_at",
            principal.user_id,
        )
    return {"organizations": [organization_json(r) for r in rows]}


async def get_organization(conn: Connection, principal: Principal, organization: str) -> dict[str, Any]:
    role = await role_in(conn, principal, organization)
    row = await conn.fetchrow("SELECT id, name, created_at FROM organizations WHERE id = $1", uuid.UUID(organization))
    if row is None:
        raise ApiError(404, "not_found", f"organization {organization} was removed meanwhile")
    members = await conn.fetch(
        "SELECT user_id, role, created_at FROM memberships WHERE organization_id = $1 ORDER BY created_at",
        uuid.UUID(organization),
    )
    return organization_json(row) | {"role": role, "members": [organization_json(m) for m in members]}


async def create_organization(conn: Connection, principal: Principal, body: Any) -> dict[str, Any]:
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ApiError(400, "invalid_organization", f"name must be a non-empty string of at most {MAX_NAME} characters")
    async with conn.transaction():
        org_id = await conn.fetchval("INSERT INTO organizations (name) VALUES ($1) RETURNING id", name.strip())
        if principal.user_id is not None:  # its creator is its first owner
            await conn.execute("INSERT INTO memberships VALUES ($1, $2, 'owner')", org_id, principal.user_id)
    return await get_organization(conn, principal, str(org_id))


async def set_member(conn: Connection, principal: Principal, organization: str, user: str, body: Any) -> None:
    org_id = await require_owner(conn, principal, organization)
    user_id = _uuid(user, "user")
    role = body.get("role") if isinstance(body, dict) else None
    if role not in ROLES:
        raise ApiError(400, "invalid_role", f"role must be one of {', '.join(ROLES)}")
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3)"
            " ON CONFLICT (organization_id, user_id) DO UPDATE SET role = EXCLUDED.role",
            org_id,
            user_id,
            role,
        )
        await _keep_an_owner(conn, org_id)


async def remove_member(conn: Connection, principal: Principal, organization: str, user: str) -> None:
    org_id = await require_owner(conn, principal, organization)
    async with conn.transaction():
        removed = await conn.execute(
            "DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2", org_id, _uuid(user, "user")
        )
        if removed == "DELETE 0":
            raise ApiError(404, "not_found", f"user {user} is not a member")
        await _keep_an_owner(conn, org_id)


async def _keep_an_owner(conn: Connection, org_id: uuid.UUID) -> None:
    owners = await conn.fetchval(
        "SELECT count(*) FROM memberships WHERE organization_id = $1 AND role = 'owner'", org_id
    )
    if owners == 0:
        raise ApiError(409, "last_owner", "an organization keeps at least one owner: name another first")
