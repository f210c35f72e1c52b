"""How a Home Assistant entity is described: one frozen record per entity, built by small helpers
that take upstream's arguments (src/integrations/home_assistant/discovery.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.source import VehicleInfo

type Requirement = Callable[[VehicleInfo], bool]
type Options = Mapping[str, Any] | Callable[[str], Mapping[str, Any]]
"""Static options, or options built from the VIN (templates that read another entity's state)."""

GATEWAY_ONLY = "gateway"
"""Availability on the gateway's last will alone (its own settings), where others also need the car."""
POSITIVE = "positive"
"""Available only while the state topic holds a number above 0 (a time that is not yet known)."""

TIME_PATTERN = "^([01][0-9]|2[0-3]):[0-5][0-9]$"


@dataclass(frozen=True, slots=True)
class EntityDescription:
    component: str
    name: str
    """Upstream's name; the `unique_id` is `<VIN>_<snake(name)>`."""
    key: str
    """State topic, relative to the vehicle root; commands go to `<key>/set`."""
    options: Options
    command: bool = False
    enabled: bool | Requirement = True
    requires: Requirement | None = None
    """When it is false the entity is removed (an empty config), not merely left out."""
    availability: str = "vehicle"


def snake(name: str) -> str:
    """Upstream's snake_case: `inflection.underscore(name.lower())` with spaces as underscores."""
    return name.lower().replace("-", "_").replace(" ", "_")


def unique_id(vin: str, name: str) -> str:
    return f"{vin}_{snake(name)}"


def _optional(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def sensor(
    key: str,
    name: str,
    *,
    enabled: bool | Requirement = True,
    entity_category: str | None = None,
    device_class: str | None = None,
    state_class: str | None = None,
    unit: str | None = None,
    icon: str | None = None,
    value_template: str = "{{ value }}",
    availability: str = "vehicle",
) -> EntityDescription:
    options = {"value_template": value_template} | _optional(
        entity_category=entity_category,
        device_class=device_class,
        state_class=state_class,
        unit_of_measurement=unit,
        icon=icon,
    )
    return EntityDescription("sensor", name, key, options, enabled=enabled, availability=availability)


def binary_sensor(
    key: str,
    name: str,
    *,
    device_class: str | None = None,
    icon: str | None = None,
    value_template: str = "{{ value }}",
    payload_on: str = "True",
    payload_off: str = "False",
    requires: Requirement | None = None,
) -> EntityDescription:
    options = {"value_template": value_template, "payload_on": payload_on, "payload_off": payload_off}
    options |= _optional(device_class=device_class, icon=icon)
    return EntityDescription("binary_sensor", name, key, options, requires=requires)


def switch(
    key: str,
    name: str,
    *,
    icon: str | None = None,
    value_template: str = "{{ value }}",
    payload_on: str = "True",
    payload_off: str = "False",
    requires: Requirement | None = None,
) -> EntityDescription:
    options = {
        "value_template": value_template,
        "payload_on": payload_on,
        "payload_off": payload_off,
        "optimistic": False,
        "qos": 0,
    } | _optional(icon=icon)
    return EntityDescription("switch", name, key, options, command=True, requires=requires)


def lock(
    key: str, name: str, *, icon: str, state_locked: str = "True", state_unlocked: str = "False"
) -> EntityDescription:
    options = {
        "payload_lock": "True",
        "payload_unlock": "False",
        "state_locked": state_locked,
        "state_unlocked": state_unlocked,
        "optimistic": False,
        "qos": 0,
        "icon": icon,
    }
    return EntityDescription("lock", name, key, options, command=True)


def number(
    key: str,
    name: str,
    *,
    low: float,
    high: float,
    step: float,
    unit: str,
    icon: str,
    mode: str = "auto",
    entity_category: str | None = None,
    device_class: str | None = None,
    enabled: bool | Requirement = True,
    availability: str = "vehicle",
) -> EntityDescription:
    options = {
        "value_template": "{{ value }}",
        "retain": "false",
        "mode": mode,
        "min": low,
        "max": high,
        "step": step,
        "unit_of_measurement": unit,
        "icon": icon,
    } | _optional(entity_category=entity_category, device_class=device_class)
    return EntityDescription("number", name, key, options, command=True, enabled=enabled, availability=availability)


def select(
    key: str,
    name: str,
    options: list[str],
    *,
    icon: str,
    value_template: str = "{{ value }}",
    command_template: str | Callable[[str], str] = "{{ value }}",
    entity_category: str | None = None,
    requires: Requirement | None = None,
    availability: str = "vehicle",
) -> EntityDescription:
    def build(vin: str) -> Mapping[str, Any]:
        command = command_template(vin) if callable(command_template) else command_template
        return {
            "value_template": value_template,
            "command_template": command,
            "options": options,
            "icon": icon,
        } | _optional(entity_category=entity_category)

    return EntityDescription("select", name, key, build, command=True, requires=requires, availability=availability)


def text(
    key: str, name: str, *, value_template: str, command_template: Callable[[str], str], icon: str
) -> EntityDescription:
    def build(vin: str) -> Mapping[str, Any]:
        return {
            "value_template": value_template,
            "command_template": command_template(vin),
            "retain": "false",
            "min": 4,
            "max": 5,
            "pattern": TIME_PATTERN,
            "icon": icon,
        }

    return EntityDescription("text", name, key, build, command=True)


def state_of(component: str, name: str) -> Callable[[str], str]:
    """A template reading another of the car's entities, for commands that send a whole schedule."""
    return lambda vin: f"{{{{ states('{component}.{unique_id(vin, name)}') }}}}"


def schedule_command(**fields: str | Callable[[str], str]) -> Callable[[str], str]:
    return lambda vin: json.dumps({k: v(vin) if callable(v) else v for k, v in fields.items()})
