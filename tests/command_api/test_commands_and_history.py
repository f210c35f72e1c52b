"""Idempotent retries, the command lifecycle in the audit table, history pages and the live
stream, over real HTTP and WebSockets with the real gateway, ingest, broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg

from command_api.live import GRANTS_CHANGED, TOKEN_EXPIRED
from command_api.routes import STATE_CACHE
from common.settings import DatabaseSettings, MqttSettings
from tests.command_api.conftest import ALICE, API_KEY, BOB, SERVICE_KEY, VIN_A, VIN_B, Api, Client, user_token
from tests.gateway.test_gateway import vin
from tests.helpers import client, wait_until


async def _audit(db: DatabaseSettings, command_id: str) -> list[Any]:
    conn = await asyncpg.connect(db.url.get_secret_value())
    try:
        return await conn.fetch("SELECT * FROM commands WHERE id = $1", uuid.UUID(command_id))
    finally:
        await conn.close()


async def test_a_retried_request_with_the_same_key_sends_once(stack: Api, db_settings: DatabaseSettings) -> None:
    key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    url = f"{stack.base}/api/vehicles/{vin(1)}/commands/lock"
    headers = {"X-API-Key": API_KEY, **key}
    async with stack.http.post(url, headers=headers) as first:
        one = await first.json()
        assert first.status == 200, one
        assert "Idempotent-Replayed" not in first.headers
    async with stack.http.post(url, headers=headers) as again:
        two = await again.json()
        assert (again.status, again.headers["Idempotent-Replayed"]) == (200, "true")
    assert two["id"] == one["id"]
    conn = await asyncpg.connect(db_settings.url.get_secret_value())
    try:
        assert (
            await conn.fetchval("SELECT count(*) FROM commands WHERE idempotency_key = $1", key["Idempotency-Key"]) == 1
        )
    finally:
        await conn.close()
    async with stack.http.post(f"{stack.base}/api/vehicles/{vin(1)}/commands/unlock", headers=headers) as other:
        body = await other.json()
        assert (other.status, body["error"]["code"]) == (422, "idempotency_key_reused")


async def test_requests_with_one_key_at_once_make_one_command(stack: Api, db_settings: DatabaseSettings) -> None:
    """Requests that arrive together share one audit statement; their key still makes one command."""
    key = f"together-{uuid.uuid4()}"
    url = f"{stack.base}/api/vehicles/{vin(1)}/commands/lock?wait=0"

    async def post() -> tuple[int, str | None, str]:
        async with stack.http.post(url, headers={"X-API-Key": API_KEY, "Idempotency-Key": key}) as response:
            return response.status, response.headers.get("Idempotent-Replayed"), (await response.json())["id"]

    answers = await asyncio.gather(*(post() for _ in range(5)))
    assert {status for status, _, _ in answers} <= {200, 202}, answers
    assert len({command_id for _, _, command_id in answers}) == 1
    assert [replayed for _, replayed, _ in answers].count(None) == 1  # the others are replays
    conn = await asyncpg.connect(db_settings.url.get_secret_value())
    try:
        assert await conn.fetchval("SELECT count(*) FROM commands WHERE idempotency_key = $1", key) == 1
    finally:
        await conn.close()


async def test_the_lifecycle_is_in_the_audit_table(stack: Api, db_settings: DatabaseSettings) -> None:
    status, accepted = await stack.call("POST", f"/api/vehicles/{vin(2)}/commands/find_my_car?wait=0")
    # The simulated car starts and answers at once, so the API may read the row back at any stage
    # (the 202 path without an answer is covered deterministically by test_no_answer_is_202_then_expired).
    assert (status, accepted["status"]) in ((202, "sent"), (202, "running"), (200, "succeeded"))
    [row] = await _audit(db_settings, accepted["id"])
    assert row["status"] in ("sent", "running", "succeeded")
    assert row["expires_at"] > row["created_at"]

    async def finished() -> bool:
        _, now = await stack.call("GET", f"/api/commands/{accepted['id']}")
        return bool(now["status"] == "succeeded")

    await wait_until(finished, what="the command succeeded")
    [row] = await _audit(db_settings, accepted["id"])
    assert (row["status"], row["requested_by"], row["error"]) == ("succeeded", "api-key:default", None)
    assert row["finished_at"] is not None
    status, listing = await stack.call("GET", f"/api/vehicles/{vin(2)}/commands")
    assert accepted["id"] in [c["id"] for c in listing["commands"]]


async def test_history_pages_with_a_cursor(api: Client) -> None:
    alice = user_token(ALICE)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = f"?limit=10&cursor={cursor}" if cursor else "?limit=10"
        status, page, _ = await api.call("GET", f"/api/vehicles/{VIN_A}/telemetry{query}", token=alice)
        assert status == 200, page
        seen += [item["ts"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 25
    assert seen == sorted(seen, reverse=True)  # newest first
    start = datetime(2026, 5, 1, tzinfo=UTC)
    window = f"?from={(start + timedelta(minutes=5)).isoformat()}&to={(start + timedelta(minutes=8)).isoformat()}"
    status, page, _ = await api.call("GET", f"/api/vehicles/{VIN_A}/telemetry{window.replace('+', '%2B')}", token=alice)
    assert [item["values"]["drivetrain/soc"] for item in page["items"]] == [7, 6, 5]
    for bad in ("?cursor=nonsense", "?limit=0", "?from=yesterday", "?from=2026-05-01T00:00:00"):
        status, body, _ = await api.call("GET", f"/api/vehicles/{VIN_A}/telemetry{bad}", token=alice)
        assert status == 400, bad
        assert body["error"]["message"]


async def _next_telemetry(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(ws.receive_json(), timeout)
        if message["type"] == "telemetry":
            return dict(message)


async def test_live_stream_per_vehicle_and_for_all_of_a_users_vehicles(
    api: Client, mqtt_settings: MqttSettings
) -> None:
    alice, bob = user_token(ALICE), user_token(BOB)
    async with (
        api.http.ws_connect(f"{api.base}/api/vehicles/{VIN_A}/live?access_token={alice}") as one,
        api.http.ws_connect(f"{api.base}/api/live?access_token={bob}") as fleet,
    ):
        snapshot = await one.receive_json()
        assert (snapshot["type"], [v["vin"] for v in snapshot["vehicles"]]) == ("snapshot", [VIN_A])
        assert [v["vin"] for v in (await fleet.receive_json())["vehicles"]] == [VIN_B]
        async with client(mqtt_settings, "gateway") as gateway:
            # Outside the telemetry contract: never relayed (the ingest dead-letters them).
            await gateway.publish(f"saic/acct/vehicles/{VIN_A}/drivetrain/soc", b"250", qos=1)
            await gateway.publish(f"saic/acct/vehicles/{VIN_A}/drivetrain/bogus/deep/key", b"1", qos=1)
            await gateway.publish(f"saic/acct/vehicles/{VIN_A}/drivetrain/soc", b"77.5", qos=1)
            await gateway.publish(f"saic/acct/vehicles/{VIN_B}/drivetrain/soc", b"33", qos=1)
            change = await _next_telemetry(one)
            assert (change["vin"], change["key"], change["value"]) == (VIN_A, "drivetrain/soc", 77.5)
            change = await _next_telemetry(fleet)
            assert (change["vin"], change["value"]) == (VIN_B, 33.0)  # Bob never sees Alice's car


async def test_live_stream_needs_a_token_and_access(api: Client) -> None:
    for path, status in (
        (f"/api/vehicles/{VIN_A}/live", 401),
        (f"/api/vehicles/{VIN_A}/live?access_token={user_token(BOB)}", 403),
    ):
        async with api.http.get(api.base + path, headers={"Connection": "Upgrade", "Upgrade": "websocket"}) as r:
            assert r.status == status
            assert json.loads(await r.text())["error"]["code"] in ("unauthorized", "forbidden")


async def test_a_live_stream_ends_when_its_token_expires(api: Client) -> None:
    """The acceptance run's socket streamed 12 more messages after its token had expired."""
    for path in (f"/api/vehicles/{VIN_A}/live", "/api/live"):
        token = user_token(ALICE, expires_in=2)
        started = time.monotonic()
        async with api.http.ws_connect(f"{api.base}{path}?access_token={token}") as ws:
            assert (await ws.receive_json())["type"] == "snapshot"
            closing = await asyncio.wait_for(ws.receive(), 10)
        assert closing.type == aiohttp.WSMsgType.CLOSE, closing
        assert (ws.close_code, closing.extra) == (TOKEN_EXPIRED, "token expired")
        assert time.monotonic() - started < 4


async def test_a_live_stream_ends_when_the_users_grants_change(api: Client, seeded: DatabaseSettings) -> None:
    """The acceptance run's socket streamed 27 more messages after the user's grant was deleted."""
    token = user_token(ALICE)
    async with (
        api.http.ws_connect(f"{api.base}/api/live?access_token={token}") as alice,
        api.http.ws_connect(f"{api.base}/api/live?access_token={user_token(BOB)}") as bob,
        api.http.ws_connect(f"{api.base}/api/live", headers={"X-API-Key": SERVICE_KEY}) as service,
    ):
        for ws in (alice, bob, service):
            assert (await ws.receive_json())["type"] == "snapshot"
        await wait_until(lambda: api.app[STATE_CACHE].listening, what="the API listening for changes")
        conn = await asyncpg.connect(seeded.url.get_secret_value())
        try:
            await conn.execute("DELETE FROM user_vehicles WHERE user_id = $1", ALICE)
        finally:
            await conn.close()
        closing = await asyncio.wait_for(alice.receive(), 10)
        assert closing.type == aiohttp.WSMsgType.CLOSE, closing
        assert (closing.data, closing.extra) == (GRANTS_CHANGED, "grants changed")
        assert not bob.closed  # nobody else's grants changed
        assert not service.closed
    async with api.http.ws_connect(f"{api.base}/api/live?access_token={token}") as again:
        assert (await again.receive_json())["vehicles"] == []  # the stream of what Alice may see now
