"""What the gateway needs from a vehicle source: the simulated fleet or the SAIC API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Literal, Protocol

from common import topics
from common.values import TelemetryValue

type ClimateMode = Literal["on", "front", "blowingonly"]
type FindMyCarMode = Literal["activate", "lights_only", "horn_only", "stop"]


class CommandFailed(Exception):
    """The vehicle or its API refused or failed a command; the message is shown to the user."""


@dataclass(frozen=True, slots=True)
class VehicleInfo:
    vin: str
    brand: str
    model: str
    year: int
    series: str
    color: str
    configuration: Mapping[str, str] = field(default_factory=dict)
    """Model options by name (`HeatedSeat`, `Sunroof`, `Battery`, ...), as the SAIC API lists them."""
    raw_configuration: str | None = None
    """The options as the SAIC API sent them (JSON), for upstream's `_internal/configuration/raw`."""

    @property
    def is_electric(self) -> bool:
        """Every series but ZP22 (the MG HS petrol) has a traction battery and charging data."""
        return not self.series.startswith("ZP22")

    @property
    def has_sunroof(self) -> bool:
        return self.configuration.get("Sunroof") != "0"

    @property
    def heated_seats(self) -> Literal["levels", "on_off"] | None:
        """`HeatedSeat` 1: four levels; 2: on and off; anything else: none (as upstream reads it)."""
        return {"1": "levels", "2": "on_off"}.get(self.configuration.get("HeatedSeat", ""))  # type: ignore[return-value]

    @property
    def supports_target_soc(self) -> bool:
        return self.configuration.get("Battery") == "1"

    @property
    def ac_temperatures(self) -> tuple[int, int]:
        """The remote climate's settable range in °C (the MG4, EH32, goes to 17-33)."""
        return (17, 33) if self.series.startswith("EH32") else (16, 28)

    def topic_values(self) -> dict[str, TelemetryValue]:
        """The `info/...` topics, published once at start."""
        values: dict[str, TelemetryValue] = dict(
            zip(topics.INFO, (self.brand, self.model, str(self.year), self.series, self.color), strict=True)
        )
        for name, value in self.configuration.items():
            values[f"{topics.INFO_CONFIGURATION}/{name}"] = value
        if self.raw_configuration is not None:
            values[topics.INTERNAL_CONFIGURATION_RAW] = self.raw_configuration
        return values


VEHICLE_START = "323"
"""The message type SAIC sends when a car is started: activity seen without asking (and waking) the car."""


@dataclass(frozen=True, slots=True)
class VehicleMessage:
    """One entry of the account's message list (alarms: vehicle start, charging, faults)."""

    id: str
    vin: str | None
    type: str
    title: str
    content: str
    sender: str
    time: datetime
    status: str
    """`read`, `unread` or `unknown`, as upstream names SAIC's read flag."""

    def topic_values(self) -> dict[str, TelemetryValue]:
        """Upstream's `info/lastMessage/*` topics."""
        values: dict[str, TelemetryValue] = {
            f"{topics.INFO_LAST_MESSAGE}/{key}": value
            for key, value in (
                ("messageId", self.id),
                ("messageType", self.type),
                ("title", self.title),
                ("messageTime", self.time),
                ("sender", self.sender),
                ("content", self.content),
                ("status", self.status),
                ("vin", self.vin),
            )
            if value
        }
        return values


type ChargeCurrentLimit = Literal["6A", "8A", "16A", "MAX"]
type ChargingScheduleMode = Literal["until_configured_time", "until_configured_soc", "disabled"]


class VehicleControl(Protocol):
    """Remote actions on one vehicle; each raises CommandFailed with a user-facing reason."""

    async def lock(self) -> None: ...
    async def unlock(self) -> None: ...
    async def open_tailgate(self) -> None: ...
    async def start_climate(self, mode: ClimateMode, temperature: int | None) -> None: ...
    async def stop_climate(self) -> None: ...
    async def set_heated_seats(self, left: int, right: int) -> None: ...
    async def set_rear_window_heat(self, on: bool) -> None: ...
    async def start_charging(self) -> None: ...
    async def stop_charging(self) -> None: ...
    async def set_target_soc(self, percent: int) -> None: ...
    async def set_charge_current_limit(self, limit: ChargeCurrentLimit) -> None: ...
    async def set_charging_cable_lock(self, locked: bool) -> None: ...
    async def set_charging_schedule(self, mode: ChargingScheduleMode, start: time, end: time) -> None: ...
    async def set_battery_heating(self, on: bool) -> None: ...
    async def set_battery_heating_schedule(self, start: time | None) -> None:
        """Heat the battery daily at `start` (local time); None turns the schedule off."""
        ...

    async def find_my_car(self, mode: FindMyCarMode) -> None: ...


class VehicleSource(Protocol):
    expected_errors: tuple[type[Exception], ...]
    """Failures that are the source's own (its API refusing, down or invalid): one log line each,
    not a traceback."""

    async def vehicles(self) -> list[VehicleInfo]: ...

    async def close(self) -> None: ...

    def throttled_seconds(self) -> float:
        """Seconds calls have waited for the account's rate limit, in all (0 without one)."""
        ...

    def calls_today(self, vin: str) -> int:
        """Calls made for the vehicle in the current UTC day (gateway/call_budget.py)."""
        ...

    async def poll(self, vin: str) -> Mapping[str, TelemetryValue]:
        """The vehicle's current readings as topic keys (`drivetrain/soc`, ...) and values."""
        ...

    async def heard_from(self, vin: str) -> datetime | None:
        """When the API last heard from the car, read without waking it (None: the source cannot tell)."""
        ...

    async def new_messages(self) -> list[VehicleMessage]:
        """The account's messages not returned before, oldest first; the source marks them read."""
        ...

    def control(self, vin: str) -> VehicleControl: ...
