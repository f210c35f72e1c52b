"""The upstream gateway's `<root>/<category>/<key>/set` topics, so evcc and Home Assistant keep working.

Plain payloads (trimmed, case-insensitive) become the same commands `cmd/<command>` runs, or change
the gateway's own refresh settings; the reply goes to the sibling `.../result` topic as `Success` or
`Failed: <reason>`. A retained action is never replayed after a restart: it is cleared instead.
Retained refresh settings are applied, since Home Assistant keeps them retained to survive restarts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from common import topics
from common.commands import CommandStatus
from common.mqtt import MqttConnection, Received
from common.values import TelemetryValue
from gateway.dispatcher import CommandDispatcher
from gateway.refresh import PERIOD_NAMES, RefreshMode

log = logging.getLogger(__name__)

SUCCESS = "Success"
TRUE_WORDS = ("true", "1", "on")
FALSE_WORDS = ("false", "0", "off")
TEMPERATURE_RANGE = (16, 28)


class BadPayload(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class CommandCall:
    command: str
    args: dict[str, Any]


def parse_bool(payload: str) -> bool:
    if payload in TRUE_WORDS:
        return True
    if payload in FALSE_WORDS:
        return False
    raise BadPayload(f"expected true or false, got {payload!r}")


def parse_int(payload: str) -> int:
    try:
        return int(float(payload))
    except ValueError:
        raise BadPayload(f"expected a number, got {payload!r}") from None


def parse_json(payload: str) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except ValueError:
        raise BadPayload(f"expected a JSON object, got {payload[:60]!r}") from None
    if not isinstance(data, dict):
        raise BadPayload("expected a JSON object")
    return {str(k).lower(): v for k, v in data.items()}


def _one_of(payload: str, choices: tuple[str, ...]) -> str:
    if payload not in choices:
        raise BadPayload(f"expected one of {', '.join(choices)}, got {payload!r}")
    return payload


type Latest = Callable[[str], TelemetryValue | None]
"""The vehicle's last published value for a key (for commands that resend the current setting)."""
type Translate = Callable[[str, Latest], CommandCall]


def _lock(p: str, _: Latest) -> CommandCall:
    return CommandCall("lock" if parse_bool(p) else "unlock", {})


def _boot(p: str, _: Latest) -> CommandCall:
    if parse_bool(p):
        raise BadPayload("the tailgate can only be opened remotely (send false)")
    return CommandCall("tailgate", {})


def _charging(p: str, _: Latest) -> CommandCall:
    return CommandCall("charging", {"action": "start" if parse_bool(p) else "stop"})


def _on_off(command: str) -> Translate:
    return lambda p, _: CommandCall(command, {"action": "on" if parse_bool(p) else "off"})


def _cable_lock(p: str, _: Latest) -> CommandCall:
    return CommandCall("charging_cable_lock", {"action": "lock" if parse_bool(p) else "unlock"})


def _soc_target(p: str, _: Latest) -> CommandCall:
    return CommandCall("target_soc", {"percent": parse_int(p)})


def _current_limit(p: str, _: Latest) -> CommandCall:
    return CommandCall("charge_current_limit", {"limit": _one_of(p, ("6a", "8a", "16a", "max")).upper()})


def _charging_schedule(p: str, _: Latest) -> CommandCall:
    data = parse_json(p)
    args = {
        "mode": str(data.get("mode", "")).lower(),
        "start_time": data.get("starttime"),
        "end_time": data.get("endtime"),
    }
    return CommandCall("charging_schedule", args)


def _battery_heating_schedule(p: str, _: Latest) -> CommandCall:
    data = parse_json(p)
    return CommandCall(
        "battery_heating_schedule", {"mode": str(data.get("mode", "")).lower(), "start_time": data.get("starttime")}
    )


def _climate(p: str, latest: Latest) -> CommandCall:
    action = _one_of(p, ("on", "off", "front", "blowingonly"))
    temperature = latest(topics.CLIMATE_REMOTE_TEMPERATURE)
    args: dict[str, Any] = {"action": action}
    if action == "on" and isinstance(temperature, int):
        args["temperature"] = temperature
    return CommandCall("climate", args)


def _front_defrost(p: str, _: Latest) -> CommandCall:
    return CommandCall("climate", {"action": "front" if parse_bool(p) else "off"})


def _heated_seat(side: str) -> Translate:
    other_key = topics.CLIMATE_HEATED_SEAT_RIGHT if side == "left" else topics.CLIMATE_HEATED_SEAT_LEFT
    other_side = "right" if side == "left" else "left"

    def translate(p: str, latest: Latest) -> CommandCall:
        other = latest(other_key)
        return CommandCall("heated_seats", {side: parse_int(p), other_side: other if isinstance(other, int) else 0})

    return translate


def _find_my_car(p: str, _: Latest) -> CommandCall:
    return CommandCall("find_my_car", {"mode": _one_of(p, ("activate", "lights_only", "horn_only", "stop"))})


ACTIONS: dict[str, Translate] = {
    topics.DOORS_LOCKED: _lock,
    "doors/boot": _boot,
    topics.DRIVETRAIN_CHARGING: _charging,
    topics.DRIVETRAIN_SOC_TARGET: _soc_target,
    topics.DRIVETRAIN_CHARGE_CURRENT_LIMIT: _current_limit,
    topics.DRIVETRAIN_CHARGING_SCHEDULE: _charging_schedule,
    topics.DRIVETRAIN_BATTERY_HEATING: _on_off("battery_heating"),
    topics.DRIVETRAIN_BATTERY_HEATING_SCHEDULE: _battery_heating_schedule,
    topics.DRIVETRAIN_CHARGING_CABLE_LOCK: _cable_lock,
    topics.CLIMATE_REMOTE_CLIMATE_STATE: _climate,
    topics.CLIMATE_BACK_WINDOW_HEAT: _on_off("rear_window_heat"),
    "climate/frontWindowDefrosterHeating": _front_defrost,
    topics.CLIMATE_HEATED_SEAT_LEFT: _heated_seat("left"),
    topics.CLIMATE_HEATED_SEAT_RIGHT: _heated_seat("right"),
    "location/findMyCar": _find_my_car,
}
"""Topics (without `/set`) that act on the car, and how their payload becomes a command."""


class VehicleSettings(Protocol):
    """What the set topics change in the gateway itself (implemented by the Gateway)."""

    def set_refresh_mode(self, vin: str, mode: RefreshMode) -> None: ...
    def set_refresh_period(self, vin: str, name: str, seconds: int) -> None: ...
    def set_remote_temperature(self, vin: str, celsius: int) -> None: ...
    def mark_active(self, vin: str) -> None: ...
    def latest(self, vin: str, key: str) -> TelemetryValue | None: ...


class SetTopicHandler:
    def __init__(
        self, mqtt: MqttConnection, dispatcher: CommandDispatcher, gateway: VehicleSettings, prefix: str
    ) -> None:
        self.mqtt = mqtt
        self.dispatcher = dispatcher
        self.gateway = gateway
        self.prefix = prefix
        self._clearing: set[str] = set()
        """`/set` topics whose retained action we cleared: the empty message coming back is ours."""

    async def on_message(self, message: Received) -> None:
        parsed = topics.parse_vehicle_topic(self.prefix, message.topic)
        suffix = f"/{topics.SET_SUFFIX}"
        if parsed is None or not parsed.path.endswith(suffix):
            return None
        key = parsed.path.removesuffix(suffix)
        root = message.topic.removesuffix(f"/{parsed.path}")
        payload = message.payload.decode(errors="replace").strip().lower()
        if not payload and (message.retain or message.topic in self._clearing):
            self._clearing.discard(message.topic)
            return None  # a retained message cleared, by us or by whoever set it: not a request
        if not payload:
            return await self._reply(root, key, "Failed: an empty payload (expected a value)")
        if parsed.vin not in self.dispatcher.known_vins:
            return await self._reply(root, key, f"Failed: unknown vehicle {parsed.vin}")
        if key in ACTIONS:
            if message.retain:
                log.warning("ignoring retained %s = %r and clearing it: actions are never replayed", key, payload)
                self._clearing.add(message.topic)
                await self.mqtt.publish(message.topic, b"", qos=1, retain=True)
                return None
            self.dispatcher.spawn(self._act(root, parsed.vin, key, payload))
            return None
        await self._reply(root, key, self._configure(parsed.vin, key, payload, retained=message.retain))
        return None

    async def _act(self, root: str, vin: str, key: str, payload: str) -> None:
        try:
            call = ACTIONS[key](payload, lambda k: self.gateway.latest(vin, k))
        except BadPayload as exc:
            return await self._reply(root, key, f"Failed: {exc}")
        status, error = await self.dispatcher.execute(vin, call.command, call.args, label=f"{key}/set = {payload}")
        await self._reply(root, key, SUCCESS if status is CommandStatus.SUCCEEDED else f"Failed: {error}")
        return None

    def _configure(self, vin: str, key: str, payload: str, *, retained: bool) -> str:
        try:
            if key == topics.REFRESH_MODE:
                mode = RefreshMode(_one_of(payload, tuple(RefreshMode)))
                if retained and mode is RefreshMode.FORCE:
                    return "Failed: a retained force is ignored (it would poll on every restart)"
                self.gateway.set_refresh_mode(vin, mode)
            elif key.startswith(f"{topics.REFRESH_PERIOD}/") and key.rsplit("/", maxsplit=1)[-1] in PERIOD_NAMES:
                seconds = parse_int(payload)
                if seconds <= 0:
                    raise BadPayload(f"expected a positive number of seconds, got {seconds}")
                self.gateway.set_refresh_period(vin, key.rsplit("/", maxsplit=1)[-1], seconds)
            elif key == topics.CLIMATE_REMOTE_TEMPERATURE:
                low, high = TEMPERATURE_RANGE
                self.gateway.set_remote_temperature(vin, min(max(parse_int(payload), low), high))
            elif key == topics.DRIVETRAIN_HV_BATTERY_ACTIVE:
                if parse_bool(payload):
                    self.gateway.mark_active(vin)
            else:
                return f"Failed: unsupported topic {key}/set"
        except BadPayload as exc:
            return f"Failed: {exc}"
        return SUCCESS

    async def _reply(self, root: str, key: str, text: str) -> None:
        log.info("%s/set: %s", key, text)
        # Retained, as upstream: a dashboard that opens later still sees how the last request went.
        await self.mqtt.publish(f"{root}/{key}/{topics.RESULT_SUFFIX}", text, qos=1, retain=True)
