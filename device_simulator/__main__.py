"""`python -m device_simulator`: SIMULATED_DEVICES devices of an organization "Simulated devices",
enrolled through the API (with COMMAND_API_KEY) the first time and remembered in
DEVICE_SIMULATOR_STATE (each secret is shown once), connected through the API's MQTT edge."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import Field, SecretStr

from common.lifecycle import run_program
from common.settings import EnvSettings
from device_simulator.device import DeviceIdentity, SimulatedDevice

log = logging.getLogger("device_simulator")

ORGANIZATION = "Simulated devices"
FIRMWARE = "1.0.0"


class SimulatorSettings(EnvSettings):
    devices: int = Field(5, alias="SIMULATED_DEVICES", ge=0, le=100_000)
    api_url: str = Field("http://127.0.0.1:8080", alias="DEVICE_SIMULATOR_API", pattern=r"^https?://")
    api_key: SecretStr = Field(alias="COMMAND_API_KEY")
    state_file: Path = Field(Path(".data/simulated-devices.json"), alias="DEVICE_SIMULATOR_STATE")
    telemetry_interval: float = Field(60.0, alias="SIMULATED_DEVICE_INTERVAL", gt=0)
    ota_failure_rate: float = Field(0.05, alias="SIMULATED_DEVICE_OTA_FAILURE_RATE", ge=0, le=1)


def mac_of(index: int) -> str:
    """Locally administered addresses (02:...), one per simulated device."""
    return "02:53:49:4d:" + f"{index:04x}"[:2] + ":" + f"{index:04x}"[2:]


async def _call(http: aiohttp.ClientSession, method: str, url: str, key: str, body: Any = None) -> tuple[int, Any]:
    async with http.request(method, url, json=body, headers={"X-API-Key": key}) as response:
        return response.status, await response.json()


async def enrol_all(settings: SimulatorSettings, stop: asyncio.Event) -> list[DeviceIdentity]:
    """The devices' identities: from the state file, enrolling the ones it lacks."""
    known: dict[str, dict[str, str]] = (
        json.loads(settings.state_file.read_text()) if settings.state_file.exists() else {}
    )
    key, base = settings.api_key.get_secret_value(), settings.api_url.rstrip("/")
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():  # the API may still be starting
            try:
                status, body = await _call(http, "GET", f"{base}/api/organizations", key)
                if status == 200:
                    break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(1)
        organizations = [o for o in body["organizations"] if o["name"] == ORGANIZATION]
        if organizations:
            organization = organizations[0]["id"]
        else:
            status, created = await _call(http, "POST", f"{base}/api/organizations", key, {"name": ORGANIZATION})
            organization = created["id"]
        for index in range(settings.devices):
            mac = mac_of(index)
            if mac in known:
                continue
            status, device = await _call(
                http,
                "POST",
                f"{base}/api/devices",
                key,
                {
                    "mac": mac,
                    "organization_id": organization,
                    "name": f"Simulated radar {index + 1}",
                    "firmware_version": FIRMWARE,
                },
            )
            if status != 201:
                log.error("could not enrol simulated device %s: %s", mac, device.get("error", device))
                continue
            known[mac] = {"device_id": device["device_id"], "secret": device["secret"]}
    settings.state_file.parent.mkdir(parents=True, exist_ok=True)
    settings.state_file.touch(mode=0o600)
    settings.state_file.write_text(json.dumps(known, indent=1))
    return [DeviceIdentity(**known[mac_of(i)]) for i in range(settings.devices) if mac_of(i) in known]


async def main(stop: asyncio.Event) -> None:
    settings = SimulatorSettings.from_env()
    if settings.devices == 0:
        await stop.wait()
        return
    identities = await enrol_all(settings, stop)
    host, _, port = settings.api_url.split("://", 1)[1].partition(":")
    devices = [
        SimulatedDevice(
            identity,
            host,
            int(port.rstrip("/") or 80),
            telemetry_interval=settings.telemetry_interval,
            ota_failure_rate=settings.ota_failure_rate,
            firmware_version=FIRMWARE,
            rng=random.Random(identity.device_id),  # noqa: S311 - a simulation
        )
        for identity in identities
    ]
    log.info("%d simulated devices connecting to %s/mqtt", len(devices), settings.api_url)
    tasks = [asyncio.create_task(device.run()) for device in devices]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    run_program("device_simulator", main, os.environ.get("LOG_LEVEL", "INFO"))
