"""Home Assistant MQTT discovery: upstream's entities (entities.py), so that dashboards survive a switch.

Config topic: `<prefix>/<component>/<VIN>_mg/<VIN>_<snake(name)>/config`, retained; a feature the car
lacks gets an empty config, which removes the entity, as upstream does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

from common import topics
from common.mqtt import MqttConnection
from gateway.integrations.home_assistant.entities import ENTITIES, RETIRED
from gateway.integrations.home_assistant.entity import GATEWAY_ONLY, POSITIVE, unique_id
from gateway.source import VehicleInfo

log = logging.getLogger(__name__)


def _availability(kind: str, gateway_topic: str, root: str, key: str) -> list[dict[str, str]]:
    def entry(topic: str, **template: str) -> dict[str, str]:
        return {"topic": topic, "payload_available": "online", "payload_not_available": "offline", **template}

    rules = [entry(gateway_topic)]
    if kind != GATEWAY_ONLY:
        rules.append(entry(f"{root}/{topics.AVAILABLE}"))
    if kind == POSITIVE:
        rules.append(entry(f"{root}/{key}", value_template="{{ 'online' if (value | int) > 0 else 'offline' }}"))
    return rules


def _device(info: VehicleInfo) -> dict[str, Any]:
    model = " ".join(str(p) for p in (info.model, info.year or "", info.color) if p)
    return {
        "name": f"{info.brand} {info.model} {info.vin}",
        "manufacturer": info.brand,
        "model": model,
        "hw_version": info.series,
        "identifiers": [info.vin],
    }


def _climate_options(info: VehicleInfo, root: str) -> dict[str, Any]:
    low, high = info.ac_temperatures
    return {
        "precision": 1.0,
        "temperature_unit": "C",
        "mode_state_topic": f"{root}/{topics.CLIMATE_REMOTE_CLIMATE_STATE}",
        "mode_command_topic": f"{root}/{topics.CLIMATE_REMOTE_CLIMATE_STATE}/{topics.SET_SUFFIX}",
        "mode_state_template": '{% if value == "on" %}auto{% else %}off{% endif %}',
        "mode_command_template": '{% if value == "auto" %}on{% else %}off{% endif %}',
        "modes": ["off", "auto"],
        "current_temperature_topic": f"{root}/{topics.CLIMATE_INTERIOR_TEMPERATURE}",
        "current_temperature_template": "{{ value }}",
        "temperature_command_topic": f"{root}/{topics.CLIMATE_REMOTE_TEMPERATURE}/{topics.SET_SUFFIX}",
        "temperature_command_template": "{{ value | int }}",
        "temperature_state_topic": f"{root}/{topics.CLIMATE_REMOTE_TEMPERATURE}",
        "temperature_state_template": "{{ value | int }}",
        "min_temp": low,
        "max_temp": high,
    }


def discovery_configs(
    info: VehicleInfo, root: str, *, discovery_prefix: str, availability_topic: str
) -> dict[str, dict[str, Any] | None]:
    """Discovery topic -> config payload, or None for an entity to remove (a feature the car lacks)."""
    device = _device(info)
    configs: dict[str, dict[str, Any] | None] = {}
    for entity in ENTITIES:
        object_id = unique_id(info.vin, entity.name)
        topic = f"{discovery_prefix}/{entity.component}/{info.vin}_mg/{object_id}/config"
        if entity.requires is not None and not entity.requires(info):
            configs[topic] = None
            continue
        config: dict[str, Any] = {
            "name": entity.name,
            "device": device,
            "unique_id": object_id,
            "object_id": object_id,
            "availability": _availability(entity.availability, availability_topic, root, entity.key),
            "availability_mode": "all",
        }
        if entity.component == "climate":
            config |= _climate_options(info, root)
        elif entity.component == "device_tracker":
            config["json_attributes_topic"] = f"{root}/{entity.key}"
        else:
            config["state_topic"] = f"{root}/{entity.key}"
            if entity.command:
                config["command_topic"] = f"{root}/{entity.key}/{topics.SET_SUFFIX}"
            enabled = entity.enabled(info) if callable(entity.enabled) else entity.enabled
            config["enabled_by_default"] = enabled
        options = entity.options(info.vin) if callable(entity.options) else entity.options
        configs[topic] = config | dict(options)
    for component, suffix in RETIRED:
        configs[f"{discovery_prefix}/{component}/{info.vin}_mg/{info.vin}_{suffix}/config"] = None
    return configs


class HomeAssistantDiscovery:
    def __init__(self, mqtt: MqttConnection, *, discovery_prefix: str, availability_topic: str) -> None:
        self.mqtt = mqtt
        self.discovery_prefix = discovery_prefix
        self.availability_topic = availability_topic
        self.vehicles: dict[str, tuple[VehicleInfo, str]] = {}
        self.published = 0

    @property
    def status_topic(self) -> str:
        return topics.home_assistant_status_topic(self.discovery_prefix)

    def add_vehicle(self, info: VehicleInfo, root: str) -> None:
        self.vehicles[info.vin] = (info, root)

    def remove_vehicle(self, vin: str) -> None:
        """The account left this process (another replica serves it now): its configs are that
        replica's to publish."""
        self.vehicles.pop(vin, None)

    async def publish_all(self) -> None:
        await self.publish(list(self.vehicles))

    async def publish(self, vins: list[str]) -> None:
        """These vehicles' configs (an account that just started: not every other account's again)."""
        vehicles = [self.vehicles[vin] for vin in vins if vin in self.vehicles]
        for info, root in vehicles:
            configs = discovery_configs(
                info, root, discovery_prefix=self.discovery_prefix, availability_topic=self.availability_topic
            )
            messages = [
                (topic, b"" if config is None else json.dumps(config).encode()) for topic, config in configs.items()
            ]
            try:
                await self.mqtt.publish_many(messages, retain=True)
            except Exception as exc:  # every (re)connect publishes all again
                log.warning("Home Assistant discovery not published (%s)", exc)
                return
            self.published += len(configs)
        log.info("published Home Assistant discovery for %d vehicles", len(vehicles))

    async def on_status(self, payload: bytes) -> None:
        if payload.strip().lower() == b"online":
            # Home Assistant restarted: answer after a short random delay, as upstream does, so that
            # many gateways do not all answer at the same instant.
            await asyncio.sleep(random.uniform(0.1, 1.0))  # noqa: S311 - jitter, not cryptography
            await self.publish_all()
