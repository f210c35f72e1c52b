"""Organizations and roles, the whole matrix: an owner, an operator and a viewer of an organization
whose SAIC account has a car, and outsiders; reading, commanding, and managing accounts and members."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from cryptography.fernet import Fernet

from common.settings import DatabaseSettings, MqttSettings
from tests.command_api.conftest import ALICE, BOB, SERVICE_KEY, Client, add_history, secured_api, user_token

CAROL, DAVE = uuid.UUID(int=0xCA201), uuid.UUID(int=0xDA7E)
VIN_C = "LSJGAMMA000000003"


@pytest.fixture
async def org_api(mqtt_settings: MqttSettings, seeded: DatabaseSettings) -> AsyncIterator[tuple[Client, str, int]]:
    env = {"ACCOUNTS_ENCRYPTION_KEY": Fernet.generate_key().decode(), "ACCOUNT_VERIFY_WAIT": "0"}
    async with secured_api(mqtt_settings, seeded, **env) as api:
        alice = user_token(ALICE)
        status, organization, _ = await api.call("POST", "/api/organizations", token=alice, json={"name": "Fleet"})
        assert status == 201, organization
        org = organization["id"]
        for user, role in ((CAROL, "operator"), (DAVE, "viewer")):
            status, body, _ = await api.call(
                "PUT", f"/api/organizations/{org}/members/{user}", token=alice, json={"role": role}
            )
            assert status == 200, body
        # The organization's SAIC account and its car, as a gateway records them at the first login.
        conn = await asyncpg.connect(seeded.url.get_secret_value())
        try:
            await conn.execute("INSERT INTO vehicles (vin, account) VALUES ($1, 'fleet@example.com')", VIN_C)
            account = await conn.fetchval(
                "INSERT INTO accounts (username, password_encrypted, status, organization_id)"
                " VALUES ('fleet@example.com', 'x', 'active', $1) RETURNING id",
                uuid.UUID(org),
            )
            await conn.execute("INSERT INTO account_vehicles VALUES ($1, $2)", account, VIN_C)
        finally:
            await conn.close()
        yield api, org, account


READERS = {"owner": ALICE, "operator": CAROL, "viewer": DAVE}
OUTSIDER = BOB  # has a car of his own, none of the organization's
EVERY_ROLE = pytest.mark.parametrize(("role", "user"), [*READERS.items(), ("outsider", OUTSIDER)])


@EVERY_ROLE
async def test_who_may_read_and_command_the_organizations_car(
    org_api: tuple[Client, str, int], role: str, user: uuid.UUID
) -> None:
    api, _, _ = org_api
    token = user_token(user)
    read, _, _ = await api.call("GET", f"/api/vehicles/{VIN_C}", token=token)
    _, listed, _ = await api.call("GET", "/api/vehicles", token=token)
    command, answer, _ = await api.call("POST", f"/api/vehicles/{VIN_C}/commands/lock?wait=0", token=token)
    sees = role != "outsider"
    assert read == (200 if sees else 403)
    assert (VIN_C in {v["vin"] for v in listed["vehicles"]}) is sees
    assert command == (202 if role in ("owner", "operator") else 403), answer
    if role == "viewer":
        assert "operator or owner role" in answer["error"]["message"]


@EVERY_ROLE
async def test_who_may_see_and_change_the_organizations_account(
    org_api: tuple[Client, str, int], role: str, user: uuid.UUID
) -> None:
    api, _, account = org_api
    token = user_token(user)
    _, listed, _ = await api.call("GET", "/api/accounts", token=token)
    seen = [a["username"] for a in listed["accounts"]]
    assert seen == ([] if role == "outsider" else ["fleet@example.com"])
    changed, _, _ = await api.call("PATCH", f"/api/accounts/{account}", token=token, json={"password": "new"})
    assert changed == (202 if role == "owner" else 404)  # 202: pending a gateway's first login
    removed, _, _ = await api.call("DELETE", f"/api/accounts/{account}", token=token)
    assert removed == (204 if role == "owner" else 404)


@EVERY_ROLE
async def test_who_may_see_and_manage_the_members(org_api: tuple[Client, str, int], role: str, user: uuid.UUID) -> None:
    api, org, _ = org_api
    token, newcomer = user_token(user), uuid.uuid4()
    seen, body, _ = await api.call("GET", f"/api/organizations/{org}", token=token)
    assert seen == (404 if role == "outsider" else 200)
    if seen == 200:
        assert body["role"] == role
        assert {m["user_id"]: m["role"] for m in body["members"]} == {str(u): r for r, u in READERS.items()}
    added, _, _ = await api.call(
        "PUT", f"/api/organizations/{org}/members/{newcomer}", token=token, json={"role": "viewer"}
    )
    assert added == {"owner": 200, "outsider": 404}.get(role, 403)


async def test_an_organization_keeps_an_owner_and_an_api_key_manages_all(org_api: tuple[Client, str, int]) -> None:
    api, org, _ = org_api
    alice = user_token(ALICE)
    status, problem, _ = await api.call("DELETE", f"/api/organizations/{org}/members/{ALICE}", token=alice)
    assert status == 409, problem
    status, _, _ = await api.call(
        "PUT", f"/api/organizations/{org}/members/{ALICE}", token=alice, json={"role": "viewer"}
    )
    assert status == 409
    status, _, _ = await api.call(
        "PUT", f"/api/organizations/{org}/members/{CAROL}", key=SERVICE_KEY, json={"role": "owner"}
    )
    assert status == 200
    status, _, _ = await api.call("DELETE", f"/api/organizations/{org}/members/{ALICE}", token=alice)
    assert status == 204  # Carol owns it now
    _, everything, _ = await api.call("GET", "/api/organizations", key=SERVICE_KEY)
    assert [o["id"] for o in everything["organizations"]] == [org]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/organizations", {"name": ""}, 400),
        ("/api/organizations", ["not", "an", "object"], 400),
        (f"/api/organizations/{uuid.uuid4()}/members/{uuid.uuid4()}", {"role": "viewer"}, 404),
        ("/api/organizations/not-a-uuid/members/nor-this", {"role": "viewer"}, 404),
    ],
)
async def test_bad_organization_requests_are_refused_with_the_reason(
    org_api: tuple[Client, str, int], path: str, body: object, status: int
) -> None:
    api, _, _ = org_api
    method = "POST" if path == "/api/organizations" else "PUT"
    answer, problem, _ = await api.call(method, path, token=user_token(ALICE), json=body)
    assert answer == status, problem
    assert problem["error"]["message"]


async def test_a_car_linked_again_shows_its_new_organization_only_its_own_history(
    org_api: tuple[Client, str, int], seeded: DatabaseSettings
) -> None:
    """Ten readings from before the car was the organization's account's, ten after: its members
    read the ten after; an API key (the platform's operators) reads all twenty."""
    api, _, account = org_api
    start = datetime(2026, 5, 1, tzinfo=UTC)
    await add_history(seeded, VIN_C, 20, start)
    conn = await asyncpg.connect(seeded.url.get_secret_value())
    try:
        await conn.execute(
            "UPDATE account_vehicles SET since = $1 WHERE account_id = $2", start + timedelta(minutes=10), account
        )
        await conn.execute(
            "INSERT INTO drives (vin, start_ts, end_ts, duration_s, readings)"
            " VALUES ($1, $2, $2, 0, 1), ($1, $3, $3, 0, 1)",
            VIN_C,
            start,
            start + timedelta(minutes=15),
        )
    finally:
        await conn.close()
    dave = user_token(DAVE)
    _, page, _ = await api.call("GET", f"/api/vehicles/{VIN_C}/telemetry?limit=100", token=dave)
    times = sorted(datetime.fromisoformat(item["ts"]) for item in page["items"])
    assert times == [start + timedelta(minutes=m) for m in range(10, 20)]
    _, everything, _ = await api.call("GET", f"/api/vehicles/{VIN_C}/telemetry?limit=100", key=SERVICE_KEY)
    assert len(everything["items"]) == 20
    _, drives, _ = await api.call("GET", f"/api/vehicles/{VIN_C}/drives", token=dave)
    assert len(drives["items"]) == 1  # the earlier drive is the previous owner's
    _, all_drives, _ = await api.call("GET", f"/api/vehicles/{VIN_C}/drives", key=SERVICE_KEY)
    earlier = min(all_drives["items"], key=lambda d: d["start_ts"])
    status, _, _ = await api.call("GET", f"/api/drives/{earlier['id']}", token=dave)
    assert status == 403


async def test_a_car_sold_from_the_organization_keeps_its_past_and_not_its_present(
    org_api: tuple[Client, str, int], seeded: DatabaseSettings
) -> None:
    """The car left the organization's account after its 15th reading: its members still read the
    first 15, and neither its later readings nor its current state, live stream or commands."""
    api, _, account = org_api
    start = datetime(2026, 5, 1, tzinfo=UTC)
    await add_history(seeded, VIN_C, 20, start)
    conn = await asyncpg.connect(seeded.url.get_secret_value())
    try:
        await conn.execute(
            "UPDATE account_vehicles SET since = $1, until = $2 WHERE account_id = $3",
            start - timedelta(days=1),
            start + timedelta(minutes=15),
            account,
        )
    finally:
        await conn.close()
    alice, dave = user_token(ALICE), user_token(DAVE)
    _, page, _ = await api.call("GET", f"/api/vehicles/{VIN_C}/telemetry?limit=100", token=dave)
    times = sorted(datetime.fromisoformat(item["ts"]) for item in page["items"])
    assert times == [start + timedelta(minutes=m) for m in range(15)]
    for token in (alice, dave):
        status, _, _ = await api.call("GET", f"/api/vehicles/{VIN_C}", token=token)
        assert status == 403  # its state now is its new owner's
        _, listed, _ = await api.call("GET", "/api/vehicles", token=token)
        assert VIN_C not in {v["vin"] for v in listed["vehicles"]}
    status, answer, _ = await api.call("POST", f"/api/vehicles/{VIN_C}/commands/lock?wait=0", token=alice)
    assert status == 403, answer
    assert "no longer yours" in answer["error"]["message"]
