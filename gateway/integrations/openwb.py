"""Charging stations (upstream's OpenWB integration): a wallbox's MQTT topics tell the gateway a car
started charging, and the gateway tells the wallbox the car's state of charge and range.

Configured as upstream, by a JSON file (CHARGING_STATIONS_FILE) listing per car:
`vin`, `chargeStateTopic`, `chargingValue`, and optionally `socTopic`, `rangeTopic`,
`chargerConnectedTopic`, `chargerConnectedValue`. The broker's ACL lets the gateway use topics
under `openWB/` and `wallbox/` only (bridge the wallbox's broker there), so other topics are refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common import topics
from common.settings import SettingsError
from common.values import TelemetryValue, encode, is_vin

log = logging.getLogger(__name__)

WALLBOX_NAMESPACES = ("openWB/", "wallbox/")
"""Where the ACL (mosquitto/acl) lets the gateway read and write a wallbox's topics."""


@dataclass(frozen=True, slots=True)
class ChargingStation:
    vin: str
    charge_state_topic: str
    charging_value: str
    soc_topic: str | None = None
    range_topic: str | None = None
    connected_topic: str | None = None
    connected_value: str | None = None


def load_charging_stations(path: Path) -> list[ChargingStation]:
    """Upstream's charging-stations.json; a SettingsError says what is wrong with it."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"CHARGING_STATIONS_FILE {path}: {exc}") from None
    if not isinstance(entries, list):
        raise SettingsError(f"CHARGING_STATIONS_FILE {path}: expected a JSON list of charging stations")
    stations = []
    for number, entry in enumerate(entries, start=1):
        where = f"CHARGING_STATIONS_FILE {path}, entry {number}"
        if not isinstance(entry, dict) or not {"vin", "chargeStateTopic", "chargingValue"} <= entry.keys():
            raise SettingsError(f"{where}: needs vin, chargeStateTopic and chargingValue")
        if not is_vin(str(entry["vin"])):
            raise SettingsError(f"{where}: {entry['vin']!r} is not a VIN")
        station = ChargingStation(
            vin=str(entry["vin"]),
            charge_state_topic=str(entry["chargeStateTopic"]),
            charging_value=str(entry["chargingValue"]),
            soc_topic=entry.get("socTopic"),
            range_topic=entry.get("rangeTopic"),
            connected_topic=entry.get("chargerConnectedTopic"),
            connected_value=entry.get("chargerConnectedValue"),
        )
        for topic in filter(
            None, (station.charge_state_topic, station.soc_topic, station.range_topic, station.connected_topic)
        ):
            if not topic.startswith(WALLBOX_NAMESPACES) or any(c in topic for c in "#+"):
                raise SettingsError(
                    f"{where}: {topic!r} must be a topic under {' or '.join(WALLBOX_NAMESPACES)} (the broker's ACL)"
                )
        stations.append(station)
    return stations


class ChargingStations:
    def __init__(self, stations: list[ChargingStation]) -> None:
        self.by_vin = {s.vin: s for s in stations}
        self._by_state_topic = {s.charge_state_topic: s for s in stations}
        self._last_state: dict[str, str] = {}

    def subscriptions(self) -> list[str]:
        return list(self._by_state_topic)

    def charging_started(self, topic: str, payload: str) -> str | None:
        """The VIN to poll at once when the wallbox's charge state changes (as upstream, any change
        but the first repeat); None for a topic that is not a station's or an unchanged state."""
        station = self._by_state_topic.get(topic)
        if station is None:
            return None
        previous = self._last_state.get(station.vin)
        self._last_state[station.vin] = payload
        if previous == payload:
            return None
        log.info("charging station of %s reports %r (was %r): polling the car", station.vin, payload, previous)
        return station.vin

    def owns(self, topic: str) -> bool:
        return topic in self._by_state_topic

    def readings_for_the_wallbox(self, vin: str, values: Mapping[str, TelemetryValue]) -> dict[str, str]:
        """Topic -> payload of the car's SoC and range for its wallbox, from a poll's values."""
        station = self.by_vin.get(vin)
        if station is None:
            return {}
        out = {}
        for topic, key in ((station.soc_topic, topics.DRIVETRAIN_SOC), (station.range_topic, topics.DRIVETRAIN_RANGE)):
            if topic and key in values:
                out[topic] = encode(values[key])
        return out
