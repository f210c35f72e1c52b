"""Home Assistant MQTT discovery, republished when Home Assistant comes back online."""

from __future__ import annotations

import json

from common.settings import MqttSettings
from gateway.integrations.home_assistant.discovery import discovery_configs
from gateway.simulator import make_vehicle
from tests.gateway.test_gateway import root, running_gateway, vin
from tests.helpers import client, collect, wait_until


def test_entities_follow_the_upstream_layout() -> None:
    info = make_vehicle(0, seed=1).info
    configs = discovery_configs(
        info, "saic/me/vehicles/" + info.vin, discovery_prefix="homeassistant", availability_topic="saic/_internal/lwt"
    )
    lock = configs[f"homeassistant/lock/{info.vin}_mg/{info.vin}_doors_lock/config"]
    assert lock is not None
    assert lock["command_topic"] == f"saic/me/vehicles/{info.vin}/doors/locked/set"
    assert lock["state_locked"] == "True"
    assert lock["availability_mode"] == "all"
    assert [a["topic"] for a in lock["availability"]] == [
        "saic/_internal/lwt",
        f"saic/me/vehicles/{info.vin}/available",
    ]
    assert lock["device"]["identifiers"] == [info.vin]
    soc = configs[f"homeassistant/sensor/{info.vin}_mg/{info.vin}_soc/config"]
    assert soc is not None
    assert (soc["unit_of_measurement"], soc["device_class"]) == ("%", "battery")
    climate = configs[f"homeassistant/climate/{info.vin}_mg/{info.vin}_vehicle_climate/config"]
    assert climate is not None
    assert climate["current_temperature_topic"].endswith("/climate/interiorTemperature")
    published = [(t.split("/")[1], c["unique_id"]) for t, c in configs.items() if c is not None]
    assert len(set(published)) == len(published)  # unique within each component, as Home Assistant requires
    # A feature the model lacks is removed with an empty config, as upstream does: no sunroof here.
    assert configs[f"homeassistant/switch/{info.vin}_mg/{info.vin}_sun_roof/config"] is None
    assert configs[f"homeassistant/select/{info.vin}_mg/{info.vin}_heated_seat_front_left_level/config"] is not None
    assert configs[f"homeassistant/switch/{info.vin}_mg/{info.vin}_heated_seat_front_left/config"] is None


async def test_discovery_is_published_and_republished_when_home_assistant_restarts(mqtt_settings: MqttSettings) -> None:
    async with running_gateway(mqtt_settings) as gateway, client(mqtt_settings, "integrations") as home_assistant:
        await wait_until(lambda: gateway.discovery.published > 0, what="discovery published")
        await home_assistant.subscribe(f"homeassistant/lock/{vin(1)}_mg/+/config", qos=1)
        configs = await collect(home_assistant, 3, timeout=3)
        assert all(m.retain for m in configs)
        assert json.loads(configs[0].payload)["availability"][1]["topic"] == f"{root(1)}/available"
        published = gateway.discovery.published
        await home_assistant.publish("homeassistant/status", b"online", qos=1)  # HA's birth message
        await wait_until(lambda: gateway.discovery.published > published, what="republished")
