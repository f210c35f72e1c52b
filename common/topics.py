"""The MQTT topic contract, byte-compatible with the upstream saic-python-mqtt-gateway.

Vehicle root: `<prefix>/<account>/vehicles/<vin>`; telemetry below it as `<category>/<key>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

SET_SUFFIX = "set"
RESULT_SUFFIX = "result"
COMMAND_SEGMENT = "cmd"
AVAILABLE = "available"
VEHICLES = "vehicles"

# The seven categories the ingest stores (the seed's subscriptions).
INGESTED_CATEGORIES = ("drivetrain", "location", "climate", "doors", "lights", "tyres", "windows")

# Telemetry keys, relative to the vehicle root.
DRIVETRAIN_SOC = "drivetrain/soc"
DRIVETRAIN_RANGE = "drivetrain/range"
DRIVETRAIN_MILEAGE = "drivetrain/mileage"
DRIVETRAIN_RUNNING = "drivetrain/running"
DRIVETRAIN_CHARGING = "drivetrain/charging"
DRIVETRAIN_CHARGER_CONNECTED = "drivetrain/chargerConnected"
DRIVETRAIN_POWER = "drivetrain/power"
DRIVETRAIN_VOLTAGE = "drivetrain/voltage"
DRIVETRAIN_CURRENT = "drivetrain/current"
DRIVETRAIN_AUX_BATTERY_VOLTAGE = "drivetrain/auxiliaryBatteryVoltage"
DRIVETRAIN_HV_BATTERY_ACTIVE = "drivetrain/hvBatteryActive"
DRIVETRAIN_SOC_TARGET = "drivetrain/socTarget"
DRIVETRAIN_REMAINING_CHARGING_TIME = "drivetrain/remainingChargingTime"
DRIVETRAIN_TOTAL_BATTERY_CAPACITY = "drivetrain/totalBatteryCapacity"
DRIVETRAIN_CHARGE_CURRENT_LIMIT = "drivetrain/chargeCurrentLimit"
DRIVETRAIN_CHARGING_CABLE_LOCK = "drivetrain/chargingCableLock"
DRIVETRAIN_CHARGING_SCHEDULE = "drivetrain/chargingSchedule"
DRIVETRAIN_BATTERY_HEATING = "drivetrain/batteryHeating"
DRIVETRAIN_BATTERY_HEATING_SCHEDULE = "drivetrain/batteryHeatingSchedule"
BMS_CHARGE_STATUS = "bms/chargeStatus"
DRIVETRAIN_CURRENT_JOURNEY = "drivetrain/currentJourney"
DRIVETRAIN_CHARGING_TYPE = "drivetrain/chargingType"
DRIVETRAIN_SOC_KWH = "drivetrain/soc_kwh"
DRIVETRAIN_HYBRID_ELECTRICAL_RANGE = "drivetrain/hybrid_electrical_range"
DRIVETRAIN_CHARGING_STOP_REASON = "drivetrain/chargingStopReason"
DRIVETRAIN_BATTERY_HEATING_STOP_REASON = "drivetrain/batteryHeatingStopReason"
DRIVETRAIN_MILEAGE_OF_DAY = "drivetrain/mileageOfTheDay"
DRIVETRAIN_MILEAGE_SINCE_LAST_CHARGE = "drivetrain/mileageSinceLastCharge"
DRIVETRAIN_CHARGING_LAST_START = "drivetrain/charging/lastStart"
DRIVETRAIN_CHARGING_LAST_END = "drivetrain/charging/lastEnd"
DRIVETRAIN_LAST_CHARGE_ENDING_POWER = "drivetrain/lastChargeEndingPower"
DRIVETRAIN_POWER_USAGE_OF_DAY = "drivetrain/powerUsageOfDay"
DRIVETRAIN_POWER_USAGE_SINCE_LAST_CHARGE = "drivetrain/powerUsageSinceLastCharge"
OBC_CURRENT = "obc/current"
OBC_VOLTAGE = "obc/voltage"
OBC_POWER_SINGLE_PHASE = "obc/powerSinglePhase"
OBC_POWER_THREE_PHASE = "obc/powerThreePhase"
CCU_ONBOARD_PLUG_STATUS = "ccu/onboardChargerPlugStatus"
CCU_OFFBOARD_PLUG_STATUS = "ccu/offboardChargerPlugStatus"
DRIVETRAIN_FOSSIL_FUEL_RANGE = "drivetrain/fossilFuel/range"
DRIVETRAIN_FOSSIL_FUEL_PERCENTAGE = "drivetrain/fossilFuel/percentage"
LOCATION_LATITUDE = "location/latitude"
LOCATION_LONGITUDE = "location/longitude"
LOCATION_ELEVATION = "location/elevation"
LOCATION_HEADING = "location/heading"
LOCATION_SPEED = "location/speed"
LOCATION_POSITION = "location/position"
CLIMATE_INTERIOR_TEMPERATURE = "climate/interiorTemperature"
CLIMATE_EXTERIOR_TEMPERATURE = "climate/exteriorTemperature"
CLIMATE_REMOTE_CLIMATE_STATE = "climate/remoteClimateState"
CLIMATE_REMOTE_TEMPERATURE = "climate/remoteTemperature"
CLIMATE_BACK_WINDOW_HEAT = "climate/rearWindowDefrosterHeating"
CLIMATE_HEATED_SEAT_LEFT = "climate/heatedSeatsFrontLeftLevel"
CLIMATE_HEATED_SEAT_RIGHT = "climate/heatedSeatsFrontRightLevel"
DOORS_LOCKED = "doors/locked"
DOORS = tuple(f"doors/{d}" for d in ("driver", "passenger", "rearLeft", "rearRight", "bonnet", "boot"))
WINDOWS = tuple(f"windows/{w}" for w in ("driver", "passenger", "rearLeft", "rearRight", "sunRoof"))
TYRES = tuple(f"tyres/{t}Pressure" for t in ("frontLeft", "frontRight", "rearLeft", "rearRight"))
LIGHTS = tuple(f"lights/{lt}" for lt in ("mainBeam", "dippedBeam", "side"))
INFO = tuple(f"info/{i}" for i in ("brand", "model", "year", "series", "color"))
INFO_MODEL = "info/model"
INFO_BRAND = "info/brand"
INFO_CONFIGURATION = "info/configuration"
INFO_LAST_MESSAGE = "info/lastMessage"
INTERNAL_CONFIGURATION_RAW = "_internal/configuration/raw"
INFO_LAST_MESSAGE_CONTENT = "info/lastMessage/content"
WINDOWS_SUN_ROOF = "windows/sunRoof"
DOORS_BOOT = "doors/boot"
DOORS_BONNET = "doors/bonnet"
CLIMATE_FRONT_WINDOW_HEAT = "climate/frontWindowDefrosterHeating"
LOCATION_FIND_MY_CAR = "location/findMyCar"
REFRESH_MODE = "refresh/mode"
REFRESH_POLLING_PHASE = "refresh/pollingPhase"
REFRESH_PERIOD = "refresh/period"
REFRESH_LAST_ERROR = "refresh/lastError"
REFRESH_LAST_ACTIVITY = "refresh/lastActivity"
REFRESH_LAST_VEHICLE_STATE = "refresh/lastVehicleState"
REFRESH_LAST_CHARGE_STATE = "refresh/lastChargeState"
REFRESH_PERIOD_ACTIVE = "refresh/period/active"
REFRESH_PERIOD_INACTIVE = "refresh/period/inActive"
REFRESH_PERIOD_AFTER_SHUTDOWN = "refresh/period/afterShutdown"
REFRESH_PERIOD_INACTIVE_GRACE = "refresh/period/inActiveGrace"
REFRESH_PERIOD_ERROR = "refresh/period/error"
REFRESH_PERIOD_CHARGING = "refresh/period/charging"
"""The reading's own time (the car's status time): the ingest orders readings by it."""

_ACCOUNT_UNSAFE = re.compile(r"[+#*$>]")


def account_segment(account: str) -> str:
    """The account as a topic level: MQTT wildcard and reserved characters become `_` (as upstream)."""
    return _ACCOUNT_UNSAFE.sub("_", account)


def internal_root(prefix: str) -> str:
    """What the programs' own topics (status, presence, metrics, alerts) start with: never a vehicle's."""
    return f"{prefix}/_internal/"


def gateway_status_topic(prefix: str) -> str:
    """The gateway's last will (upstream's name, used by Home Assistant availability)."""
    return f"{internal_root(prefix)}lwt"


def home_assistant_status_topic(discovery_prefix: str) -> str:
    """Home Assistant announces `online` here when it (re)starts: the cue to republish discovery."""
    return f"{discovery_prefix}/status"


def set_filters(prefix: str, account: str) -> list[str]:
    """The upstream gateway's `.../<category>/<key>/set` and `.../refresh/period/<key>/set` topics."""
    return [
        vehicles_filter(prefix, f"+/+/{SET_SUFFIX}", account),
        vehicles_filter(prefix, f"+/+/+/{SET_SUFFIX}", account),
    ]


def metrics_topic(prefix: str, component: str) -> str:
    """A program's Prometheus metrics (text format, retained), which the API serves at /metrics."""
    return f"{internal_root(prefix)}{component}/metrics"


def alerts_topic(prefix: str, component: str) -> str:
    """A program's open alerts and latest alert events (JSON, retained), for the operations console."""
    return f"{internal_root(prefix)}{component}/alerts"


def component_status_topic(prefix: str, component: str) -> str:
    return f"{internal_root(prefix)}{component}/status"


def instance_topic(prefix: str, component: str, instance: str) -> str:
    """One instance's presence (common.mqtt.MqttOptions.presence_topic); `+` for every instance."""
    return f"{internal_root(prefix)}{component}/instances/{instance}"


@dataclass(frozen=True, slots=True)
class VehicleTopics:
    """Topic names for one vehicle."""

    prefix: str
    account: str
    vin: str

    @property
    def root(self) -> str:
        return f"{self.prefix}/{account_segment(self.account)}/{VEHICLES}/{self.vin}"

    def key(self, key: str) -> str:
        return f"{self.root}/{key}"

    def command(self, command: str) -> str:
        return f"{self.root}/{COMMAND_SEGMENT}/{command}"

    def command_result(self, command: str) -> str:
        return f"{self.command(command)}/{RESULT_SUFFIX}"


def vehicles_filter(prefix: str, suffix: str, account: str = "+") -> str:
    """A subscription filter over every vehicle of one account (or of all accounts with `+`)."""
    acct = account if account == "+" else account_segment(account)
    return f"{prefix}/{acct}/{VEHICLES}/+/{suffix}"


def command_filter(prefix: str, account: str = "+") -> str:
    return vehicles_filter(prefix, f"{COMMAND_SEGMENT}/+", account)


def command_result_filter(prefix: str, account: str = "+") -> str:
    return vehicles_filter(prefix, f"{COMMAND_SEGMENT}/+/{RESULT_SUFFIX}", account)


class ParsedTopic(NamedTuple):
    """A named tuple, not a frozen dataclass: built for every message the ingest receives, where the
    dataclass's `object.__setattr__` per field took 1.6-1.8 µs a parse against 0.6-0.8 µs
    (`python -m timeit`, docs/benchmarks.md)."""

    account: str
    vin: str
    path: str
    """What follows the vehicle root, e.g. `drivetrain/soc` or `cmd/lock/result`."""

    @property
    def category(self) -> str:
        return self.path.split("/", 1)[0]


def parse_vehicle_topic(prefix: str, topic: str) -> ParsedTopic | None:
    """Split `<prefix>/<account>/vehicles/<vin>/<path>`; None for any other topic."""
    parts = topic.split("/", 4)
    if len(parts) != 5 or parts[0] != prefix or parts[2] != VEHICLES or not parts[3] or not parts[4]:
        return None
    return ParsedTopic(parts[1], parts[3], parts[4])


# -- directly connected devices -------------------------------------------------------------------
# Root `devices/<device_id>`, apart from the vehicles' prefix: a device's broker rights are the
# ACL's `devices/%c/...` patterns (its client id is its device id), whatever MQTT_TOPIC_PREFIX is.

DEVICES = "devices"
DEVICE_ID = re.compile(r"^[0-9a-f]{32}$")

# Device -> platform.
DEVICE_TELEMETRY = "telemetry"
DEVICE_STATUS = "status"
"""`online` (retained) and `offline` (retained, the device's last will)."""
DEVICE_CONFIG_STATUS = "config/status"
DEVICE_OTA_STATUS = "ota/status"
DEVICE_DIAG_RESPONSE = "diag/response"
# Platform -> device.
DEVICE_CONFIG_UPDATE = "config/update"
"""Retained, so a device that was offline gets its newest configuration when it connects."""
DEVICE_OTA_TRIGGER = "ota/trigger"
DEVICE_DIAG_REQUEST = "diag/request"

DEVICE_UPLINK = (DEVICE_TELEMETRY, DEVICE_STATUS, DEVICE_CONFIG_STATUS, DEVICE_OTA_STATUS, DEVICE_DIAG_RESPONSE)
DEVICE_DOWNLINK = (DEVICE_CONFIG_UPDATE, DEVICE_OTA_TRIGGER, DEVICE_DIAG_REQUEST)


def device_topic(device_id: str, key: str) -> str:
    return f"{DEVICES}/{device_id}/{key}"


def device_filter(key: str) -> str:
    """Every device's `key` topic."""
    return f"{DEVICES}/+/{key}"


@dataclass(frozen=True, slots=True)
class ParsedDeviceTopic:
    device_id: str
    key: str


def parse_device_topic(topic: str) -> ParsedDeviceTopic | None:
    """Split `devices/<device_id>/<key>` for a key of the contract; None for any other topic."""
    parts = topic.split("/", 2)
    if len(parts) != 3 or parts[0] != DEVICES or not DEVICE_ID.match(parts[1]):
        return None
    if parts[2] not in DEVICE_UPLINK and parts[2] not in DEVICE_DOWNLINK:
        return None
    return ParsedDeviceTopic(parts[1], parts[2])


class TopicFilter:
    """An MQTT topic filter split once, for matching every incoming message against it: aiomqtt's
    `Topic.matches` parses and checks the filter again on each call (2.3 µs a match)."""

    __slots__ = ("_levels", "_multi", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        levels = pattern.split("/")
        if levels[0] == "$share":  # `$share/<group>/<filter>`: matched as the filter
            levels = levels[2:]
        self._multi = levels[-1] == "#"
        self._levels = tuple(levels[:-1] if self._multi else levels)

    def matches(self, topic: str) -> bool:
        """MQTT's rules: `+` one level, a final `#` any number (none as well), and a topic that
        starts with `$` is matched by no filter that starts with a wildcard."""
        parts = topic.split("/")
        if len(parts) != len(self._levels) and not (self._multi and len(parts) >= len(self._levels)):
            return False
        if topic.startswith("$") and (not self._levels or self._levels[0] == "+"):
            return False
        return all(level in ("+", part) for level, part in zip(self._levels, parts, strict=False))
