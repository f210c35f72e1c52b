"""What the operations console reads: the fleet's audit, dead letters and alerts (operators only),
and the WebSocket authenticated through a subprotocol instead of the URL."""

from __future__ import annotations

import json

import aiohttp
import asyncpg
import pytest

from command_api import operations
from common import topics
from common.settings import DatabaseSettings, MqttSettings
from tests.command_api.conftest import ALICE, SERVICE_KEY, VIN_A, Client, user_token
from tests.helpers import client, generic_plan_scans, wait_until


async def test_operations_data_is_for_operators(api: Client) -> None:
    for path in ("/api/ops/commands", "/api/ops/dead-letters", "/api/ops/alerts"):
        status, body, _ = await api.call("GET", path, token=user_token(ALICE))
        assert (status, body["error"]["code"]) == (403, "forbidden"), path
        status, body, _ = await api.call("GET", path, key=SERVICE_KEY)
        assert status == 200, path
    status, body, _ = await api.call("GET", "/api/ops/commands?limit=0", key=SERVICE_KEY)
    assert status == 400


async def test_dead_letters_show_any_bytes_as_text(api: Client, seeded: DatabaseSettings) -> None:
    conn = await asyncpg.connect(seeded.url.get_secret_value())
    try:
        await conn.execute(
            "INSERT INTO dead_letters (received_at, topic, payload, reason) VALUES (now(), 't/x', $1, 'not a number')",
            b"\x00\xff12" + b"x" * 500,
        )
    finally:
        await conn.close()
    status, body, _ = await api.call("GET", "/api/ops/dead-letters", key=SERVICE_KEY)
    assert status == 200
    [letter] = body["dead_letters"]
    assert (letter["reason"], letter["payload_bytes"], body["total"]) == ("not a number", 504, 1)
    assert letter["payload_start"].startswith("\ufffd\ufffd12x")


async def test_a_programs_alerts_reach_the_console(api: Client, mqtt_settings: MqttSettings) -> None:
    event = {"alert": "telemetry-gap:V1", "state": "firing", "component": "ingest", "message": "no telemetry"}
    body = {"component": "ingest", "active": [{"alert": "telemetry-gap:V1", "since": "2026-11-30T10:00:00+00:00"}]}
    async with client(mqtt_settings, "ingest") as ingest:
        topic = topics.alerts_topic(mqtt_settings.topic_prefix, "ingest")
        await ingest.publish(topic, json.dumps(body | {"recent": [event]}), qos=1, retain=True)

    async def shown() -> bool:
        status, view, _ = await api.call("GET", "/api/ops/alerts", key=SERVICE_KEY)
        return status == 200 and view["recent"] == [event]

    await wait_until(shown, what="the alert in /api/ops/alerts")
    async with client(mqtt_settings, "ingest") as ingest:  # leave no retained alert for other tests
        await ingest.publish(topic, b"", qos=1, retain=True)


async def test_the_websocket_takes_the_token_as_a_subprotocol(api: Client) -> None:
    protocols = ("vehicle-backend.v1", f"access_token.{user_token(ALICE)}")
    async with api.http.ws_connect(f"{api.base}/api/vehicles/{VIN_A}/live", protocols=protocols) as ws:
        assert ws.protocol == "vehicle-backend.v1"  # never the token
        snapshot = await ws.receive_json()
        assert [v["vin"] for v in snapshot["vehicles"]] == [VIN_A]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.http.ws_connect(
            f"{api.base}/api/vehicles/{VIN_A}/live", protocols=("vehicle-backend.v1", "access_token.wrong")
        )
    assert refused.value.status == 401


async def test_the_newest_commands_are_read_from_an_index(pool: asyncpg.Pool) -> None:
    # The console asks every 5 s; a scan would read every command ever stored.
    fill = [
        "INSERT INTO commands (id, vin, command, status, expires_at, created_at)"
        " SELECT gen_random_uuid(), 'V', 'lock', 'succeeded', now(), now() - i * interval '1 s'"
        " FROM generate_series(1, 20000) AS i",
        "ANALYZE commands",
    ]
    scans = await generic_plan_scans(pool, operations.RECENT_COMMANDS, ["int"], ["commands"], fill)
    assert ("Seq Scan", "commands") not in scans
