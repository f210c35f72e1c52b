"""OTA end to end, on both brokers: firmware accepted only with the vendor's signature, and rollouts
to simulated devices (device_simulator, connected through the API's MQTT edge) that widen stage by
stage, pause themselves past the failure threshold, and trigger no one more once aborted. The real
ingest records what the devices report on `ota/status`."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from common.settings import DatabaseSettings, MqttSettings
from device_simulator.device import DeviceIdentity, SimulatedDevice
from tests.command_api.conftest import ALICE, SERVICE_KEY, Client, secured_api, user_token
from tests.helpers import wait_until
from tests.ingest.test_ingest import running_ingest

VENDOR = ec.generate_private_key(ec.SECP256R1())
IMAGE = b"firmware image 2.0.0"


def signed(sha256: str, key: ec.EllipticCurvePrivateKey = VENDOR) -> str:
    return base64.b64encode(key.sign(bytes.fromhex(sha256), ec.ECDSA(utils.Prehashed(hashes.SHA256())))).decode()


def firmware(version: str = "2.0.0", image: bytes = IMAGE) -> dict[str, str]:
    sha = hashlib.sha256(image).hexdigest()
    return {
        "version": version,
        "url": f"https://updates.example.com/{version}.bin",
        "sha256": sha,
        "signature": signed(sha),
    }


@pytest.fixture
async def ota(mqtt_settings: MqttSettings, seeded: DatabaseSettings) -> AsyncIterator[tuple[Client, str]]:
    public = VENDOR.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    env = {
        "DEVICES_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "FIRMWARE_SIGNING_PUBLIC_KEY": public.decode(),
        "ROLLOUT_TICK": "0.1",
    }
    async with secured_api(mqtt_settings, seeded, **env) as api, running_ingest(mqtt_settings, seeded):
        status, organization, _ = await api.call(
            "POST", "/api/organizations", token=user_token(ALICE), json={"name": "Sensors"}
        )
        assert status == 201, organization
        yield api, organization["id"]


@contextlib.asynccontextmanager
async def fleet(
    api: Client, organization: str, count: int, *, connect: bool = True, **options: Any
) -> AsyncIterator[list[SimulatedDevice]]:
    port = int(api.base.rsplit(":", 1)[1])
    devices = []
    # MACs of this test's own: the session's broker keeps earlier tests' retained triggers per device,
    # and each test's database numbers its rollouts from 1 again.
    prefix = secrets.token_hex(3)
    for n in range(count):
        mac = f"02:{prefix[:2]}:{prefix[2:4]}:{prefix[4:]}:00:{n:02x}"
        status, body, _ = await api.call(
            "POST", "/api/devices", key=SERVICE_KEY, json={"mac": mac, "organization_id": organization}
        )
        assert status == 201, body
        devices.append(SimulatedDevice(DeviceIdentity(body["device_id"], body["secret"]), "127.0.0.1", port, **options))
    tasks = [asyncio.create_task(d.run()) for d in devices] if connect else []
    try:
        if connect:
            await asyncio.wait_for(asyncio.gather(*(d.connected.wait() for d in devices)), 10)
        yield devices
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def start_rollout(api: Client, organization: str, **fields: Any) -> int:
    status, uploaded, _ = await api.call("POST", "/admin/firmware", key=SERVICE_KEY, json=firmware())
    assert status == 201, uploaded
    body = {"firmware_id": uploaded["id"], "organization_id": organization, **fields}
    status, rollout, _ = await api.call("POST", "/admin/rollouts", key=SERVICE_KEY, json=body)
    assert status == 201, rollout
    return int(rollout["id"])


async def rollout_of(api: Client, rollout_id: int) -> dict[str, Any]:
    status, body, _ = await api.call("GET", f"/admin/rollouts/{rollout_id}", key=SERVICE_KEY)
    assert status == 200, body
    return dict(body)


async def test_firmware_is_taken_only_with_the_vendors_signature(ota: tuple[Client, str]) -> None:
    api, _ = ota
    good = firmware()
    raw = bytearray(base64.b64decode(good["signature"]))
    raw[-1] ^= 0x01
    tampered = base64.b64encode(bytes(raw)).decode()
    other_image = hashlib.sha256(b"another image").hexdigest()
    stranger = ec.generate_private_key(ec.SECP256R1())
    for bad in (
        good | {"signature": tampered},
        good | {"sha256": other_image},  # the signature is of another image
        good | {"signature": signed(good["sha256"], stranger)},
        good | {"signature": "not base64!"},
    ):
        status, body, _ = await api.call("POST", "/admin/firmware", key=SERVICE_KEY, json=bad)
        assert (status, body["error"]["code"]) == (400, "invalid_signature"), body
    status, body, _ = await api.call("POST", "/admin/firmware", token=user_token(ALICE), json=good)
    assert status == 403, body
    status, body, _ = await api.call("POST", "/admin/firmware", key=SERVICE_KEY, json=good)
    assert status == 201, body
    status, body, _ = await api.call("POST", "/admin/firmware", key=SERVICE_KEY, json=good)
    assert (status, body["error"]["code"]) == (409, "firmware_exists")
    status, listed, _ = await api.call("GET", "/admin/firmware", key=SERVICE_KEY)
    assert [f["version"] for f in listed["firmware"]] == ["2.0.0"]


async def test_a_rollout_widens_stage_by_stage_and_completes(ota: tuple[Client, str]) -> None:
    api, organization = ota
    async with fleet(api, organization, 10) as devices:
        rollout_id = await start_rollout(api, organization, stages=[10, 50, 100])

        async def completed() -> bool:
            return bool((await rollout_of(api, rollout_id))["status"] == "completed")

        await wait_until(completed, timeout=30, what="the rollout completed")
    rollout = await rollout_of(api, rollout_id)
    stages = [d["stage"] for d in rollout["devices"]]
    assert (stages.count(0), stages.count(1), stages.count(2)) == (1, 4, 5)  # 10 %, 50 %, 100 % of 10
    assert rollout["progress"] == {"devices": 10, "included": 10, "succeeded": 10}
    assert {d.firmware_version for d in devices} == {"2.0.0"}
    _, listed, _ = await api.call("GET", "/api/devices", key=SERVICE_KEY)
    assert {d["firmware_version"] for d in listed["devices"]} == {"2.0.0"}


async def test_a_rollout_pauses_itself_past_its_failure_threshold(ota: tuple[Client, str]) -> None:
    api, organization = ota
    async with fleet(api, organization, 10, ota_fails=True):
        rollout_id = await start_rollout(api, organization, stages=[20, 100])

        async def paused() -> bool:
            return bool((await rollout_of(api, rollout_id))["status"] == "paused")

        await wait_until(paused, timeout=15, what="the rollout paused")
        await asyncio.sleep(1)  # ten ticks more: nothing else is triggered
        rollout = await rollout_of(api, rollout_id)
    assert rollout["progress"]["included"] == 2  # 20 % of 10, and no one after the pause
    assert rollout["progress"]["failed"] >= 1
    assert "of 2 devices failed" in rollout["status_reason"]

    async def alerted() -> bool:
        _, alerts, _ = await api.call("GET", "/api/ops/alerts", key=SERVICE_KEY)
        return any(a["alert"] == f"rollout:{rollout_id}" for a in alerts["active"])

    await wait_until(alerted, what="the rollout's alert in the operations view")
    status, body, _ = await api.call("POST", f"/admin/rollouts/{rollout_id}/resume", key=SERVICE_KEY, json=[])
    assert (status, body["error"]["code"]) == (400, "invalid_rollout")
    resumed = {"failure_threshold": 1.0}  # the operator accepts the failures and goes on
    status, body, _ = await api.call("POST", f"/admin/rollouts/{rollout_id}/resume", key=SERVICE_KEY, json=resumed)
    assert (status, body["status"], body["failure_threshold"]) == (200, "active", 1.0)

    async def alert_cleared() -> bool:
        return not await alerted()

    await wait_until(alert_cleared, what="the rollout's alert resolved once it was resumed")


async def test_an_aborted_rollout_triggers_no_one_more(ota: tuple[Client, str]) -> None:
    api, organization = ota
    async with fleet(api, organization, 10, connect=False) as devices:
        rollout_id = await start_rollout(api, organization, stages=[10, 100])

        async def first_stage_triggered() -> bool:
            return bool((await rollout_of(api, rollout_id))["progress"]["included"] == 1)

        await wait_until(first_stage_triggered, what="the first stage triggered")
        status, body, _ = await api.call("POST", f"/admin/rollouts/{rollout_id}/abort", key=SERVICE_KEY)
        assert (status, body["status"]) == (200, "aborted"), body
        # The device comes online, finds its (retained) trigger and succeeds: the rollout stays aborted.
        tasks = [asyncio.create_task(d.run()) for d in devices]
        try:

            async def answered() -> bool:
                return bool((await rollout_of(api, rollout_id))["progress"].get("succeeded") == 1)

            await wait_until(answered, what="the triggered device's answer recorded")
            await asyncio.sleep(1)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    rollout = await rollout_of(api, rollout_id)
    assert (rollout["status"], rollout["progress"]["included"]) == ("aborted", 1)
    status, body, _ = await api.call("POST", f"/admin/rollouts/{rollout_id}/abort", key=SERVICE_KEY)
    assert (status, body["error"]["code"]) == (409, "rollout_state")
