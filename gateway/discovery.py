"""Home Assistant MQTT discovery, compatible with the upstream gateway's entities and topic layout.

Config topics: `<prefix>/<component>/<VIN>_mg/<VIN>_<snake_name>/config`, retained; availability is
the gateway's last will and the vehicle's `available` topic, both required.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from common import topics
from common.mqtt import MqttConnection
from gateway.refresh import RefreshMode
from gateway.source import VehicleInfo

log = logging.getLogger(__name__)

type Requirement = Callable[[VehicleInfo], bool]


def _has(option: str, *values: str) -> Requirement:
    return lambda info: info.configuration.get(option) in values


def _lacks(option: str, value: str) -> Requirement:
    return lambda info: info.configuration.get(option, value) != value


@dataclass(frozen=True, slots=True)
class EntityDescription:
    component: str
    name: str
    key: str
    """State topic, relative to the vehicle root; commands go to `<key>/set`."""
    settable: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    requires: Requirement | None = None


def _sensor(
    name: str, key: str, unit: str | None = None, device_class: str | None = None, **extra: Any
) -> EntityDescription:
    options: dict[str, Any] = {"state_class": "measurement"} if unit else {}
    if unit:
        options["unit_of_measurement"] = unit
    if device_class:
        options["device_class"] = device_class
    options.update(extra)
    return EntityDescription("sensor", name, key, options=options)


def _binary(name: str, key: str, device_class: str | None = None) -> EntityDescription:
    options: dict[str, Any] = {"payload_on": "True", "payload_off": "False"}
    if device_class:
        options["device_class"] = device_class
    return EntityDescription("binary_sensor", name, key, options=options)


def _switch(name: str, key: str, on: str = "True", off: str = "False", **extra: Any) -> EntityDescription:
    return EntityDescription(
        "switch",
        name,
        key,
        settable=True,
        options={"payload_on": on, "payload_off": off, "state_on": on, "state_off": off, **extra},
    )


def _lock(name: str, key: str, locked: str = "True", unlocked: str = "False") -> EntityDescription:
    return EntityDescription(
        "lock",
        name,
        key,
        settable=True,
        options={"payload_lock": "True", "payload_unlock": "False", "state_locked": locked, "state_unlocked": unlocked},
    )


ENTITIES: tuple[EntityDescription, ...] = (
    _sensor("SoC", topics.DRIVETRAIN_SOC, "%", "battery"),
    _sensor("Range", topics.DRIVETRAIN_RANGE, "km", "distance"),
    _sensor("Mileage", topics.DRIVETRAIN_MILEAGE, "km", "distance", state_class="total_increasing"),
    _sensor("Power", topics.DRIVETRAIN_POWER, "kW", "power"),
    _sensor("Voltage", topics.DRIVETRAIN_VOLTAGE, "V", "voltage"),
    _sensor("Current", topics.DRIVETRAIN_CURRENT, "A", "current"),
    _sensor("Auxiliary battery voltage", topics.DRIVETRAIN_AUX_BATTERY_VOLTAGE, "V", "voltage"),
    _sensor("Remaining charging time", topics.DRIVETRAIN_REMAINING_CHARGING_TIME, "s", "duration"),
    _sensor("Total battery capacity", topics.DRIVETRAIN_TOTAL_BATTERY_CAPACITY, "kWh", "energy_storage"),
    _sensor("Interior temperature", topics.CLIMATE_INTERIOR_TEMPERATURE, "°C", "temperature"),
    _sensor("Exterior temperature", topics.CLIMATE_EXTERIOR_TEMPERATURE, "°C", "temperature"),
    _sensor("Speed", topics.LOCATION_SPEED, "km/h", "speed"),
    _sensor("Heading", topics.LOCATION_HEADING, "°"),
    _sensor("Elevation", topics.LOCATION_ELEVATION, "m", "distance"),
    *(_sensor(f"Tyre pressure {t[6:-8]}", t, "bar", "pressure") for t in topics.TYRES),
    _sensor("Charge status", topics.BMS_CHARGE_STATUS),
    _sensor(
        "Last vehicle state", topics.REFRESH_LAST_VEHICLE_STATE, device_class="timestamp", entity_category="diagnostic"
    ),
    _sensor("Last error", topics.REFRESH_LAST_ERROR, device_class="timestamp", entity_category="diagnostic"),
    _sensor("Polling phase", topics.REFRESH_POLLING_PHASE, entity_category="diagnostic"),
    _binary("Engine running", topics.DRIVETRAIN_RUNNING, "running"),
    _binary("Charger connected", topics.DRIVETRAIN_CHARGER_CONNECTED, "plug"),
    _binary("HV battery active", topics.DRIVETRAIN_HV_BATTERY_ACTIVE, "power"),
    *(_binary(f"Door {d[6:]}", d, "door") for d in topics.DOORS if not d.endswith("boot")),
    *(_binary(f"Window {w[8:]}", w, "window") for w in topics.WINDOWS if not w.endswith("sunRoof")),
    EntityDescription(
        "binary_sensor",
        "Sunroof",
        "windows/sunRoof",
        options={"payload_on": "True", "payload_off": "False", "device_class": "window"},
        requires=_lacks("Sunroof", "0"),
    ),
    *(_binary(f"Lights {lt[7:]}", lt, "light") for lt in topics.LIGHTS),
    _lock("Doors lock", topics.DOORS_LOCKED),
    _lock("Boot lock", "doors/boot", locked="False", unlocked="True"),
    _lock("Charging cable lock", topics.DRIVETRAIN_CHARGING_CABLE_LOCK),
    _switch("Charging", topics.DRIVETRAIN_CHARGING),
    _switch("Battery heating", topics.DRIVETRAIN_BATTERY_HEATING),
    _switch("Rear window defroster", topics.CLIMATE_BACK_WINDOW_HEAT, on="on", off="off"),
    _switch(
        "Front window defroster", topics.CLIMATE_REMOTE_CLIMATE_STATE, on="front", off="off", object_suffix="front"
    ),
    _switch("Fan only", topics.CLIMATE_REMOTE_CLIMATE_STATE, on="blowingonly", off="off", object_suffix="fan"),
    EntityDescription(
        "switch",
        "Find my car",
        "location/findMyCar",
        settable=True,
        options={"payload_on": "activate", "payload_off": "stop", "optimistic": True},
    ),
    EntityDescription(
        "climate",
        "Climate",
        topics.CLIMATE_REMOTE_CLIMATE_STATE,
        options={
            "modes": ["off", "auto"],
            "mode_state_template": "{% if value == 'off' %}off{% else %}auto{% endif %}",
            "mode_command_template": "{% if value == 'off' %}off{% else %}on{% endif %}",
            "current_temperature_topic": "climate/interiorTemperature",
            "temperature_state_topic": topics.CLIMATE_REMOTE_TEMPERATURE,
            "temperature_command_topic": f"{topics.CLIMATE_REMOTE_TEMPERATURE}/set",
            "min_temp": 16,
            "max_temp": 28,
            "precision": 1.0,
            "temperature_unit": "C",
        },
    ),
    EntityDescription(
        "select",
        "Refresh mode",
        topics.REFRESH_MODE,
        settable=True,
        options={"options": [m.value for m in RefreshMode]},
    ),
    EntityDescription(
        "select",
        "Charge current limit",
        topics.DRIVETRAIN_CHARGE_CURRENT_LIMIT,
        settable=True,
        options={"options": ["6A", "8A", "16A", "Max"]},
    ),
    *(
        EntityDescription(
            "select",
            f"Heated seat {side.lower()}",
            key,
            settable=True,
            options={
                "options": ["OFF", "LOW", "MEDIUM", "HIGH"],
                "value_template": "{{ ['OFF', 'LOW', 'MEDIUM', 'HIGH'][value | int] }}",
                "command_template": "{{ ['OFF', 'LOW', 'MEDIUM', 'HIGH'].index(value) }}",
            },
            requires=_has("HeatedSeat", "1"),
        )
        for side, key in (("Left", topics.CLIMATE_HEATED_SEAT_LEFT), ("Right", topics.CLIMATE_HEATED_SEAT_RIGHT))
    ),
    EntityDescription(
        "number",
        "Target SoC",
        topics.DRIVETRAIN_SOC_TARGET,
        settable=True,
        options={"min": 40, "max": 100, "step": 10, "unit_of_measurement": "%", "mode": "slider"},
        requires=_lacks("Battery", "0"),
    ),
    *(
        EntityDescription(
            "number",
            f"Refresh period {name}",
            f"{topics.REFRESH_PERIOD}/{name}",
            settable=True,
            options={
                "min": low,
                "max": high,
                "step": 1,
                "unit_of_measurement": "s",
                "mode": "box",
                "entity_category": "config",
            },
        )
        for name, low, high in (
            ("active", 1, 3600),
            ("inActive", 1, 432000),
            ("afterShutdown", 1, 43200),
            ("inActiveGrace", 0, 43200),
        )
    ),
    EntityDescription(
        "device_tracker",
        "Location",
        topics.LOCATION_POSITION,
        options={
            "json_attributes_topic": topics.LOCATION_POSITION,
            "source_type": "gps",
            "value_template": "{{ 'not_home' }}",
        },
    ),
)

_SNAKE = re.compile(r"[^a-z0-9]+")


def snake(name: str) -> str:
    return _SNAKE.sub("_", name.lower()).strip("_")


def discovery_configs(
    info: VehicleInfo, root: str, *, discovery_prefix: str, availability_topic: str
) -> dict[str, dict[str, Any]]:
    """Discovery topic -> config payload for every entity the vehicle supports."""
    device = {
        "name": f"{info.brand} {info.model} {info.vin}".strip(),
        "manufacturer": info.brand or "SAIC",
        "model": " ".join(str(p) for p in (info.model, info.year or "", info.color) if p),
        "hw_version": info.series,
        "identifiers": [info.vin],
    }
    availability = [{"topic": availability_topic}, {"topic": f"{root}/{topics.AVAILABLE}"}]
    configs: dict[str, dict[str, Any]] = {}
    for entity in ENTITIES:
        if entity.requires is not None and not entity.requires(info):
            continue
        options = dict(entity.options)
        suffix = options.pop("object_suffix", None)
        object_id = f"{info.vin}_{snake(entity.name if suffix is None else f'{entity.key} {suffix}')}"
        config: dict[str, Any] = {
            "name": entity.name,
            "unique_id": object_id,
            "object_id": object_id,
            "state_topic": f"{root}/{entity.key}",
            "availability": availability,
            "availability_mode": "all",
            "device": device,
        }
        if entity.component == "climate":
            config["mode_state_topic"] = config.pop("state_topic")
            config["mode_command_topic"] = f"{root}/{entity.key}/set"
        if entity.settable:
            config["command_topic"] = f"{root}/{entity.key}/set"
        for name, value in options.items():
            is_topic = name.endswith("_topic") and isinstance(value, str)
            config[name] = f"{root}/{value}" if is_topic else value
        configs[f"{discovery_prefix}/{entity.component}/{info.vin}_mg/{object_id}/config"] = config
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

    async def publish_all(self) -> None:
        for info, root in list(self.vehicles.values()):
            configs = discovery_configs(
                info, root, discovery_prefix=self.discovery_prefix, availability_topic=self.availability_topic
            )
            await asyncio.gather(
                *(self.mqtt.publish(t, json.dumps(c), qos=1, retain=True) for t, c in configs.items()),
                return_exceptions=True,
            )
            self.published += len(configs)
        log.info("published Home Assistant discovery for %d vehicles", len(self.vehicles))

    async def on_status(self, payload: bytes) -> None:
        if payload.strip().lower() == b"online":
            # Home Assistant restarted: answer after a short random delay, as upstream does, so that
            # many gateways do not all answer at the same instant.
            await asyncio.sleep(random.uniform(0.1, 1.0))  # noqa: S311 - jitter, not cryptography
            await self.publish_all()
