"""What the gateway needs from a vehicle source (the simulated fleet now, the SAIC API later)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

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


class VehicleControl(Protocol):
    async def lock(self) -> None: ...
    async def unlock(self) -> None: ...
    async def start_climate(self, mode: ClimateMode, temperature: int | None) -> None: ...
    async def stop_climate(self) -> None: ...
    async def start_charging(self) -> None: ...
    async def stop_charging(self) -> None: ...
    async def find_my_car(self, mode: FindMyCarMode) -> None: ...


class VehicleSource(Protocol):
    async def vehicles(self) -> list[VehicleInfo]: ...

    async def poll(self, vin: str) -> Mapping[str, TelemetryValue]:
        """The vehicle's current readings as topic keys (`drivetrain/soc`, ...) and values."""
        ...

    def control(self, vin: str) -> VehicleControl: ...
