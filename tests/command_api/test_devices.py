"""Directly connected devices end to end, on both brokers: enrolment through the API, a device that
connects over MQTT-over-WebSocket at the API's `/mqtt` with its HMAC password (paho's own WebSocket
transport, through aiomqtt), the broker's ACL between devices, revocation, and versioned
configuration with `If-Match`, acknowledged by the device and recorded by the real ingest."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import asyncpg
import pytest
from cryptography.fernet import Fernet

from command_api import mqtt_connect
from common import device_credentials, topics
from common.settings import DatabaseSettings, MqttSettings
from device_simulator.device import DeviceIdentity, SimulatedDevice
from tests.command_api.conftest import ALICE, BOB, SERVICE_KEY, Client, secured_api, user_token
from tests.helpers import ObservedClient, wait_until
from tests.ingest.test_ingest import running_ingest

CAROL = uuid.UUID(int=0xCA201)  # a viewer of Alice's organization


@pytest.fixture
async def device_api(mqtt_settings: MqttSettings, seeded: DatabaseSettings) -> AsyncIterator[tuple[Client, str]]:
    env = {"DEVICES_ENCRYPTION_KEY": Fernet.generate_key().decode(), "DIAG_WAIT": "1"}
    async with secured_api(mqtt_settings, seeded, **env) as api:
        status, organization, _ = await api.call(
            "POST", "/api/organizations", token=user_token(ALICE), json={"name": "Sensors"}
        )
        assert status == 201, organization
        status, body, _ = await api.call(
            "PUT",
            f"/api/organizations/{organization['id']}/members/{CAROL}",
            token=user_token(ALICE),
            json={"role": "viewer"},
        )
        assert status == 200, body
        yield api, organization["id"]


async def enrol(api: Client, organization: str, mac: str) -> dict[str, Any]:
    status, device, _ = await api.call(
        "POST", "/api/devices", token=user_token(ALICE), json={"mac": mac, "organization_id": organization}
    )
    assert status == 201, device
    return dict(device)


def device_client(api: Client, device: dict[str, Any], password: str | None = None, **kwargs: Any) -> aiomqtt.Client:
    port = int(api.base.rsplit(":", 1)[1])
    return ObservedClient(
        "127.0.0.1",
        port,
        transport="websockets",
        websocket_path="/mqtt",
        username=device["device_id"],
        password=password or fresh_password(device),
        identifier=f"whatever-{uuid.uuid4().hex[:6]}",  # the edge makes it the device id
        timeout=5,
        **kwargs,
    )


_last_ts: dict[str, int] = {}


def fresh_password(device: dict[str, Any]) -> str:
    """A new password each call: one second later than the device's last, as a device's clock moves."""
    ts = max(int(time.time()), _last_ts.get(device["device_id"], 0) + 1)
    _last_ts[device["device_id"]] = ts
    return device_credentials.password(device["secret"], device["device_id"], ts)


BAD_CREDENTIALS, NOT_AUTHORIZED = "Bad user name or password", "Not authorized"  # CONNACK 4 and 5, as paho names them


async def refused_with(api: Client, device: dict[str, Any], password: str) -> str:
    with pytest.raises(aiomqtt.MqttCodeError) as refused:
        async with device_client(api, device, password):
            pass
    return str(refused.value.rc)


async def test_enrolment_answers_the_secret_once_and_keeps_it_encrypted(
    device_api: tuple[Client, str], seeded: DatabaseSettings
) -> None:
    api, organization = device_api
    device = await enrol(api, organization, "AA-BB-CC-00-11-22")
    assert device["mac"] == "aa:bb:cc:00:11:22"
    assert device["device_id"] == device_credentials.device_id_for("aa:bb:cc:00:11:22")
    assert len(device["secret"]) == 64
    status, shown, _ = await api.call("GET", f"/api/devices/{device['device_id']}", token=user_token(ALICE))
    assert status == 200
    assert "secret" not in shown
    assert "secret_encrypted" not in shown
    stored = await _fetchval(seeded, "SELECT secret_encrypted FROM devices WHERE device_id = $1", device["device_id"])
    assert device["secret"] not in stored
    status, again, _ = await api.call(
        "POST", "/api/devices", token=user_token(ALICE), json={"mac": "aabbcc001122", "organization_id": organization}
    )
    assert (status, again["error"]["code"]) == (409, "device_exists")


async def test_who_may_enrol_read_and_configure(device_api: tuple[Client, str]) -> None:
    api, organization = device_api
    status, body, _ = await api.call(
        "POST",
        "/api/devices",
        token=user_token(CAROL),
        json={"mac": "02:00:00:00:00:01", "organization_id": organization},
    )
    assert status == 403, body  # a viewer does not enrol
    status, body, _ = await api.call(
        "POST",
        "/api/devices",
        token=user_token(BOB),
        json={"mac": "02:00:00:00:00:01", "organization_id": organization},
    )
    assert status == 404, body  # not Bob's organization: not his to learn of
    device = await enrol(api, organization, "02:00:00:00:00:01")
    path = f"/api/devices/{device['device_id']}"
    assert (await api.call("GET", path, token=user_token(CAROL)))[0] == 200
    assert (await api.call("GET", path, token=user_token(BOB)))[0] == 404
    assert (await api.call("GET", path, key=SERVICE_KEY))[0] == 200
    status, body, _ = await api.call(
        "PUT", f"{path}/config", token=user_token(CAROL), json={}, headers={"If-Match": "0"}
    )
    assert status == 403, body
    status, listed, _ = await api.call("GET", "/api/devices", token=user_token(BOB))
    assert (status, listed) == (200, {"devices": [], "total": 0, "online": 0})
    bad: Any
    for bad in ({"mac": "nope", "organization_id": organization}, {"mac": "02:00:00:00:00:09"}, []):
        status, body, _ = await api.call("POST", "/api/devices", token=user_token(ALICE), json=bad)
        assert (status, body["error"]["code"]) == (400, "invalid_device"), body


async def test_a_device_reports_through_the_edge_into_the_database(
    device_api: tuple[Client, str], mqtt_settings: MqttSettings, seeded: DatabaseSettings
) -> None:
    api, organization = device_api
    device = await enrol(api, organization, "02:00:00:00:00:02")
    device_id = device["device_id"]
    will = aiomqtt.Will(topics.device_topic(device_id, topics.DEVICE_STATUS), b"offline", qos=1, retain=True)
    async with running_ingest(mqtt_settings, seeded):
        async with device_client(api, device, will=will) as client:
            await client.publish(topics.device_topic(device_id, topics.DEVICE_STATUS), b"online", qos=1, retain=True)
            for n in range(3):
                reading = {"ts": f"2026-11-30T10:00:0{n}+00:00", "targets": [{"x": n, "y": 1.5}]}
                await client.publish(
                    topics.device_topic(device_id, topics.DEVICE_TELEMETRY), json.dumps(reading), qos=1
                )
            await client.publish(topics.device_topic(device_id, topics.DEVICE_TELEMETRY), b"not json", qos=1)

            async def stored() -> bool:
                count = await _fetchval(seeded, "SELECT count(*) FROM device_telemetry WHERE device_id = $1", device_id)
                online = await _fetchval(seeded, "SELECT online FROM devices WHERE device_id = $1", device_id)
                return count == 3 and online is True

            await wait_until(stored, what="the device's three readings and its online state stored")
            status, body, _ = await api.call(
                "GET", f"/api/devices/{device_id}/telemetry?limit=2", token=user_token(CAROL)
            )
            assert status == 200
            assert [r["payload"]["targets"][0]["x"] for r in body["readings"]] == [2, 1]
            letter = await _fetchval(
                seeded, "SELECT reason FROM dead_letters WHERE topic = $1", f"devices/{device_id}/telemetry"
            )
            assert letter == "telemetry is not JSON"

        # A device that vanishes without a DISCONNECT: the broker publishes its will.
        connect = mqtt_connect.Connect(
            client_id="raw",
            keepalive=60,
            clean_session=True,
            username=device_id,
            password=fresh_password(device).encode(),
            will_topic=topics.device_topic(device_id, topics.DEVICE_STATUS),
            will_message=b"offline",
            will_qos=1,
            will_retain=True,
        )
        async with api.http.ws_connect(api.base + "/mqtt", protocols=("mqtt",)) as ws:
            await ws.send_bytes(mqtt_connect.encode(connect))
            assert (await ws.receive(timeout=5)).data == mqtt_connect.connack(mqtt_connect.ACCEPTED)

        async def offline() -> bool:
            return await _fetchval(seeded, "SELECT online FROM devices WHERE device_id = $1", device_id) is False

        await wait_until(offline, what="the device offline after it vanished")


async def test_wrong_expired_future_and_replayed_passwords_are_refused(device_api: tuple[Client, str]) -> None:
    api, organization = device_api
    device = await enrol(api, organization, "02:00:00:00:00:03")
    device_id, secret, now = device["device_id"], device["secret"], int(time.time())
    other_secret = device_credentials.new_secret()
    assert await refused_with(api, device, device_credentials.password(other_secret, device_id, now)) == BAD_CREDENTIALS
    assert (
        await refused_with(api, device, device_credentials.password(secret, device_id, now - 7300)) == BAD_CREDENTIALS
    )
    assert await refused_with(api, device, device_credentials.password(secret, device_id, now + 600)) == BAD_CREDENTIALS
    assert await refused_with(api, device, "hunter2") == BAD_CREDENTIALS
    stranger = {"device_id": "0" * 32, "secret": secret}
    assert await refused_with(api, stranger, device_credentials.password(secret, "0" * 32, now)) == BAD_CREDENTIALS

    # Signed in the previous hour window: still good (a device signs a fresh one at least hourly).
    previous_window = device_credentials.password(secret, device_id, (now // device_credentials.WINDOW - 1) * 3600)
    async with device_client(api, device, previous_window):
        pass
    good = fresh_password(device)
    async with device_client(api, device, good):
        pass
    assert await refused_with(api, device, good) == BAD_CREDENTIALS  # the same password again: a replay
    assert await refused_with(api, device, previous_window) == BAD_CREDENTIALS  # older than the newest used: a replay
    status, metrics, _ = await api.call("GET", "/metrics", key=SERVICE_KEY)
    assert status == 200
    assert 'api_device_connections_refused_total{code="4"} 7.0' in metrics


async def test_a_session_ends_when_its_password_leaves_its_windows(
    device_api: tuple[Client, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, organization = device_api
    device = await enrol(api, organization, "02:00:00:00:00:09")
    monkeypatch.setattr(device_credentials, "WINDOW", 1)  # one-second windows: good for 1-2 s
    started = time.monotonic()
    async with api.http.ws_connect(api.base + "/mqtt", protocols=("mqtt",)) as ws:
        connect = mqtt_connect.Connect("x", 60, True, device["device_id"], fresh_password(device).encode())
        await ws.send_bytes(mqtt_connect.encode(connect))
        assert (await ws.receive(timeout=5)).data == mqtt_connect.connack(mqtt_connect.ACCEPTED)
        closing = await ws.receive(timeout=5)
        assert (closing.type.name, closing.data, closing.extra) == (
            "CLOSE",
            4401,
            "password expired: reconnect with a fresh one",
        )
    assert 0.9 < time.monotonic() - started < 3


async def test_a_device_reaches_only_its_own_topics(
    device_api: tuple[Client, str], mqtt_settings: MqttSettings
) -> None:
    api, organization = device_api
    one = await enrol(api, organization, "02:00:00:00:00:04")
    two = await enrol(api, organization, "02:00:00:00:00:05")
    observer = ObservedClient(
        "127.0.0.1", mqtt_settings.port, username="api", password=mqtt_settings.password_for("api"), timeout=5
    )
    async with observer, device_client(api, one) as device_one:
        await observer.subscribe(topics.device_filter(topics.DEVICE_TELEMETRY), qos=1)
        await observer.subscribe("saic/#", qos=1)
        # Reading another's: amqtt refuses the subscription in its SUBACK, Mosquitto grants it and
        # delivers nothing. Either way device one gets only what is sent to it.
        for device in (two, one):
            await device_one.subscribe(topics.device_topic(device["device_id"], topics.DEVICE_CONFIG_UPDATE), qos=1)
        for device in (two, one):
            update = json.dumps({"for": device["device_id"]})
            await observer.publish(topics.device_topic(device["device_id"], topics.DEVICE_CONFIG_UPDATE), update, qos=1)
        async with asyncio.timeout(5):
            received = await anext(aiter(device_one.messages))
        assert json.loads(received.payload) == {"for": one["device_id"]}
        # Forged: in device two's name, and into the vehicles' tree. Then one honest message.
        await device_one.publish(topics.device_topic(two["device_id"], topics.DEVICE_TELEMETRY), b'{"forged":1}', qos=1)
        await device_one.publish("saic/_internal/devices/status", b"online", qos=1)
        await device_one.publish("saic/acct/vehicles/LSJALPHA000000001/drivetrain/soc", b"1", qos=1)
        await device_one.publish(topics.device_topic(one["device_id"], topics.DEVICE_TELEMETRY), b'{"own":1}', qos=1)
        seen = []
        async with asyncio.timeout(5):
            async for message in observer.messages:
                if message.retain:
                    continue  # what earlier tests left on the session's broker
                seen.append((str(message.topic), message.payload))
                if message.payload == b'{"own":1}':
                    break
        assert seen == [(topics.device_topic(one["device_id"], topics.DEVICE_TELEMETRY), b'{"own":1}')]


async def test_revoking_a_device_disconnects_it_at_once(device_api: tuple[Client, str]) -> None:
    api, organization = device_api
    device = await enrol(api, organization, "02:00:00:00:00:06")
    status, _, _ = await api.call("DELETE", f"/api/devices/{device['device_id']}", token=user_token(CAROL))
    assert status == 403  # a viewer does not revoke
    async with device_client(api, device) as client:
        await client.subscribe(topics.device_topic(device["device_id"], topics.DEVICE_CONFIG_UPDATE), qos=1)
        started = time.monotonic()
        status, body, _ = await api.call("DELETE", f"/api/devices/{device['device_id']}", token=user_token(ALICE))
        assert status == 200, body
        assert body["revoked_at"] is not None
        with pytest.raises(aiomqtt.MqttError):
            await asyncio.wait_for(_drain(client), 5)
        cut_after = time.monotonic() - started
    assert cut_after < 3, cut_after
    assert await refused_with(api, device, fresh_password(device)) == NOT_AUTHORIZED
    config = f"/api/devices/{device['device_id']}/config"
    status, body, _ = await api.call("PUT", config, token=user_token(ALICE), json={}, headers={"If-Match": "*"})
    assert (status, body["error"]["code"]) == (409, "device_revoked")


async def test_configuration_is_versioned_with_if_match_and_acknowledged(
    device_api: tuple[Client, str], mqtt_settings: MqttSettings, seeded: DatabaseSettings
) -> None:
    api, organization = device_api
    device = await enrol(api, organization, "02:00:00:00:00:07")
    path, alice = f"/api/devices/{device['device_id']}/config", user_token(ALICE)
    status, body, headers = await api.call("GET", path, token=alice)
    assert (status, body["version"], body["config"], headers["ETag"]) == (200, 0, {}, '"0"')
    status, body, _ = await api.call("PUT", path, token=alice, json={"range_m": 5})
    assert (status, body["error"]["code"]) == (428, "precondition_required")
    async with running_ingest(mqtt_settings, seeded), device_client(api, device) as client:
        await client.subscribe(topics.device_topic(device["device_id"], topics.DEVICE_CONFIG_UPDATE), qos=1)
        status, body, headers = await api.call(
            "PUT", path, token=alice, json={"range_m": 5}, headers={"If-Match": '"0"'}
        )
        assert (status, body["version"], body["status"], headers["ETag"]) == (200, 1, "pending", '"1"'), body
        status, body, _ = await api.call("PUT", path, token=alice, json={"range_m": 9}, headers={"If-Match": '"0"'})
        assert (status, body["error"]["code"]) == (412, "version_mismatch"), body  # based on a stale version
        async with asyncio.timeout(5):
            message = await anext(aiter(client.messages))
        assert json.loads(message.payload) == {"version": 1, "config": {"range_m": 5}}
        answer = {"version": 1, "status": "applied"}
        await client.publish(topics.device_topic(device["device_id"], topics.DEVICE_CONFIG_STATUS), json.dumps(answer))

        async def applied() -> bool:
            return bool((await api.call("GET", path, token=alice))[1]["status"] == "applied")

        await wait_until(applied, what="the device's acknowledgement recorded")
    for n in range(2, 13):
        status, body, _ = await api.call("PUT", path, key=SERVICE_KEY, json={"n": n}, headers={"If-Match": "*"})
        assert status == 200, body
    status, body, _ = await api.call("GET", path, token=alice)
    assert body["version"] == 12
    assert [v["version"] for v in body["versions"]] == list(range(12, 2, -1))
    assert body["versions"][0]["changed_by"] == "api-key:ops"
    status, body, _ = await api.call("PUT", path, token=alice, data=b"[1]", headers={"If-Match": "12"})
    assert (status, body["error"]["code"]) == (400, "invalid_config")


async def test_the_edge_refuses_what_is_not_an_mqtt_311_connect(device_api: tuple[Client, str]) -> None:
    api, _ = device_api
    async with api.http.ws_connect(api.base + "/mqtt", protocols=("mqtt",)) as ws:
        await ws.send_bytes(b"GET / HTTP/1.1\r\n\r\n")
        message = await ws.receive(timeout=5)
        assert message.type.name in ("CLOSE", "CLOSED", "CLOSING")
    async with api.http.ws_connect(api.base + "/mqtt", protocols=("mqtt",)) as ws:
        # An MQTT 5 CONNECT (protocol level 5): refused as a 3.1.1 server must, with return code 1.
        body = b"\x00\x04MQTT" + bytes((5, 0x02, 0, 60)) + b"\x00" + b"\x00\x00"
        await ws.send_bytes(bytes((0x10, len(body))) + body)
        message = await ws.receive(timeout=5)
        assert message.data == bytes((0x20, 2, 0, 1))


async def _drain(client: aiomqtt.Client) -> None:
    async for _ in client.messages:
        pass


async def _fetchval(db: DatabaseSettings, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(db.url.get_secret_value())
    try:
        return await conn.fetchval(query, *args)
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


async def test_a_devices_live_stream_and_diagnostics(
    device_api: tuple[Client, str], mqtt_settings: MqttSettings, seeded: DatabaseSettings
) -> None:
    api, organization = device_api
    enrolled = await enrol(api, organization, "02:00:00:00:00:08")
    port = int(api.base.rsplit(":", 1)[1])
    device = SimulatedDevice(
        DeviceIdentity(enrolled["device_id"], enrolled["secret"]), "127.0.0.1", port, telemetry_interval=0.2
    )
    path = f"/admin/devices/{device.device_id}/diag"
    status, body, _ = await api.call("POST", path, key=SERVICE_KEY)
    assert (status, body["error"]["code"]) == (409, "device_offline"), body
    async with running_ingest(mqtt_settings, seeded):  # it records the device online
        await _live_and_diag(api, device, path)
    status, body, _ = await api.call("POST", path, key=SERVICE_KEY)
    assert (status, body["error"]["code"]) == (504, "device_silent"), body  # it left without a will: "online"


async def _live_and_diag(api: Client, device: SimulatedDevice, path: str) -> None:
    running = asyncio.create_task(device.run())
    try:
        await asyncio.wait_for(device.connected.wait(), 10)
        live = f"{api.base}/api/devices/{device.device_id}/live?access_token={user_token(CAROL)}"
        async with api.http.ws_connect(live) as ws:
            first = await ws.receive_json(timeout=5)
            assert (first["type"], first["device"]["device_id"]) == ("snapshot", device.device_id)
            report = await ws.receive_json(timeout=5)
            while report["type"] != "telemetry":
                report = await ws.receive_json(timeout=5)
            assert "targets" in report["payload"]
        outsider = f"{api.base}/api/devices/{device.device_id}/live?access_token={user_token(BOB)}"
        async with api.http.get(outsider) as response:
            assert response.status == 404

        async def online() -> bool:
            return bool((await api.call("GET", f"/api/devices/{device.device_id}", key=SERVICE_KEY))[1]["online"])

        await wait_until(online, what="the device recorded online")
        status, body, _ = await api.call("POST", path, key=SERVICE_KEY, json={"what": "uptime"})
        assert status == 200, body
        assert body["response"]["firmware"] == "1.0.0"
        status, body, _ = await api.call("POST", path, token=user_token(ALICE))
        assert status == 403, body
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
