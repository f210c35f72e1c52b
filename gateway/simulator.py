"""A simulated fleet: believable drive, park and charge cycles that obey commands.

Time is real time: a car at 50 km/h moves ~70 m per 5 s poll, a 7 kW charger adds ~1 % SoC
a minute. Charges end at the SoC target or when the driver unplugs (AC and DC, top-ups and
full charges). Parked cars lose a little SoC every hour, and now and then stay parked for the night.
Every vehicle is seeded from its index, so a fleet replays the same way each run.

The first car opens every run the same way, so that a new user sees derived history at once: a
40 s drive on a low battery to a 50 kW charger, a 40 s top-up, then parking.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from common import topics
from common.values import TelemetryValue
from gateway.source import (
    ChargeCurrentLimit,
    ChargingScheduleMode,
    ClimateMode,
    CommandFailed,
    FindMyCarMode,
    VehicleControl,
    VehicleInfo,
    VehicleMessage,
)

EARTH_RADIUS_M = 6_371_000.0
KWH_PER_KM = 0.165
MODELS = (  # brand, model, series, battery kWh
    ("MG", "MG4 Electric", "EH32 S", 64.0),
    ("MG", "ZS EV", "ZS11 E", 51.0),
    ("MG", "MG5 Electric", "EP21", 61.1),
    ("MG", "Marvel R", "EP31", 70.0),
)
COLORS = ("Pebble Black", "Dover White", "Diamond Red", "Holborn Blue", "Camden Grey")
# Home bases the fleet spreads around: Amsterdam, Berlin, Lyon, Milan.
BASES = ((52.3676, 4.9041), (52.5200, 13.4050), (45.7640, 4.8357), (45.4642, 9.1900))
CLIMATE_AUTO_OFF_S = 600.0
OVERNIGHT_PARK_CHANCE = 0.1
OVERNIGHT_PARK_S = (4 * 3600.0, 12 * 3600.0)
OPENING_DRIVE_S = 40.0
OPENING_CHARGE = (50.0, 40.0)  # kW, seconds before the driver unplugs


class Phase(Enum):
    PARKED = "parked"
    DRIVING = "driving"
    CHARGING = "charging"


def simulated_vin(index: int) -> str:
    """A valid VIN (no I, O or Q), `LSJTEST` plus the index: stable across runs for docs and tests."""
    return f"LSJTEST{index:010d}"


@dataclass
class SimulatedVehicle:
    vin: str
    info: VehicleInfo
    capacity_kwh: float
    rng: random.Random
    clock: Callable[[], float]
    latitude: float
    longitude: float
    heading: float
    soc: float
    mileage_km: float
    exterior_c: float
    phase: Phase = Phase.PARKED
    phase_ends_at: float = 0.0
    speed_kmh: float = 0.0
    target_speed_kmh: float = 0.0
    locked: bool = True
    charger_connected: bool = False
    charge_power_kw: float = 0.0
    soc_target: int = 80
    climate_mode: str = "off"
    climate_since: float = 0.0
    remote_temperature: int = 22
    boot_open: bool = False
    heated_seats: tuple[int, int] = (0, 0)
    rear_window_heat: bool = False
    charge_current_limit: str = "Max"
    cable_locked: bool = False
    charging_schedule: tuple[str, str, str] = ("00:00", "00:00", "DISABLED")
    battery_heating: bool = False
    battery_heating_start: str | None = None
    interior_c: float = 18.0
    lights_until: float = 0.0
    updated_at: float = 0.0
    next_charge: tuple[float, float] | None = None
    """The next charge's power and how long until the driver unplugs; None: chosen at random."""
    drain_per_hour: float = 0.05
    """SoC points a parked car loses an hour (the 12 V battery, the modem, the BMS: vampire drain)."""

    # -- simulation -------------------------------------------------------------------------

    def advance(self) -> None:
        now = self.clock()
        dt = min(max(now - self.updated_at, 0.0), 600.0) if self.updated_at else 0.0
        self.updated_at = now
        if dt:
            self._move(dt)
            self._charge(dt)
            self._climate(dt)
        if now >= self.phase_ends_at:
            self._next_phase(now)

    def _move(self, dt: float) -> None:
        if self.phase is not Phase.DRIVING:
            self.speed_kmh = max(0.0, self.speed_kmh - 40.0)
            if self.phase is Phase.PARKED:
                self.soc = max(0.0, self.soc - self.drain_per_hour * dt / 3600)
            return
        self.speed_kmh += max(-15.0, min(15.0, self.target_speed_kmh - self.speed_kmh))
        if self.rng.random() < 0.15:
            self.target_speed_kmh = self.rng.choice((30.0, 50.0, 50.0, 80.0, 100.0, 120.0))
        self.heading = (self.heading + self.rng.gauss(0, 12)) % 360
        distance_m = self.speed_kmh / 3.6 * dt
        self.latitude, self.longitude = _destination(self.latitude, self.longitude, self.heading, distance_m)
        self.mileage_km += distance_m / 1000
        self.soc = max(0.0, self.soc - distance_m / 1000 * KWH_PER_KM / self.capacity_kwh * 100)
        if self.soc < 8.0:
            self.phase_ends_at = self.clock()  # head for a charger

    def _charge(self, dt: float) -> None:
        if self.phase is not Phase.CHARGING:
            return
        taper = 0.35 if self.soc > 80 else 1.0
        self.soc = min(100.0, self.soc + self.charge_power_kw * taper * dt / 3600 / self.capacity_kwh * 100)
        if self.soc >= self.soc_target:
            self._stop_charging()

    def _climate(self, dt: float) -> None:
        if self.climate_mode != "off" and self.clock() - self.climate_since > CLIMATE_AUTO_OFF_S:
            self.climate_mode = "off"
        goal = self.remote_temperature if self.climate_mode == "on" else self.exterior_c
        rate = 0.02 if self.climate_mode == "on" else 0.002  # fraction of the gap closed per second
        self.interior_c += (goal - self.interior_c) * min(1.0, rate * dt)

    def _next_phase(self, now: float) -> None:
        if self.phase is Phase.DRIVING or (self.phase is Phase.CHARGING and not self.charger_connected):
            self.phase = Phase.PARKED
            self.target_speed_kmh = self.speed_kmh = 0.0  # the drive ends when the car stands
            if self.soc < 30 or self.rng.random() < 0.25:
                self.charger_connected = True
                power, unplug_after = self.next_charge or (
                    self.rng.choice((7.4, 11.0, 11.0, 50.0)),
                    self.rng.choice((math.inf, self.rng.uniform(300, 3600))),  # to the target, or a top-up
                )
                self.next_charge = None
                self._start_charging(power, now + unplug_after)
                return
            overnight = self.rng.random() < OVERNIGHT_PARK_CHANCE
            self.phase_ends_at = now + self.rng.uniform(*(OVERNIGHT_PARK_S if overnight else (30, 240)))
            return
        if self.phase is Phase.CHARGING:  # the driver unplugs before the target
            self.charger_connected = False
            self._stop_charging()
            return
        self.charger_connected = False
        if self.soc < 12:
            self.charger_connected = True
            self._start_charging(50.0)
            return
        self.phase = Phase.DRIVING
        self.locked = True  # the car locks itself when it moves off
        self.boot_open = False
        self.target_speed_kmh = self.rng.choice((30.0, 50.0, 80.0))
        self.phase_ends_at = now + self.rng.uniform(60, 600)

    def _start_charging(self, power_kw: float, unplug_at: float = math.inf) -> None:
        self.phase = Phase.CHARGING
        self.charge_power_kw = power_kw
        self.phase_ends_at = unplug_at

    def _stop_charging(self) -> None:
        self.phase = Phase.PARKED
        self.charge_power_kw = 0.0
        self.phase_ends_at = self.clock() + self.rng.uniform(30, 240)

    # -- telemetry --------------------------------------------------------------------------

    def readings(self) -> dict[str, TelemetryValue]:
        now = self.clock()
        driving = self.phase is Phase.DRIVING
        charging = self.phase is Phase.CHARGING
        voltage = round(360 + self.soc * 0.4, 2)
        power = -self.charge_power_kw if charging else (round(self.speed_kmh * 0.18, 2) if driving else 0.0)
        current = round(power * 1000 / voltage, 2)
        remaining = (
            int((self.soc_target - self.soc) / 100 * self.capacity_kwh / self.charge_power_kw * 3600) if charging else 0
        )
        range_km = round(self.soc / 100 * self.capacity_kwh / KWH_PER_KM, 1)
        status_time = datetime.fromtimestamp(now, UTC).replace(microsecond=0)
        latitude, longitude = round(self.latitude, 6), round(self.longitude, 6)
        elevation = int(20 + 15 * math.sin(latitude * 1000))
        flashing = now < self.lights_until
        values: dict[str, TelemetryValue] = {
            topics.REFRESH_LAST_VEHICLE_STATE: status_time,
            topics.DRIVETRAIN_SOC: round(self.soc, 1),
            topics.DRIVETRAIN_RANGE: range_km,
            topics.DRIVETRAIN_MILEAGE: round(self.mileage_km, 1),
            topics.DRIVETRAIN_RUNNING: driving,
            topics.DRIVETRAIN_CHARGING: charging,
            topics.DRIVETRAIN_CHARGER_CONNECTED: self.charger_connected,
            topics.DRIVETRAIN_POWER: round(power, 2),
            topics.DRIVETRAIN_VOLTAGE: voltage,
            topics.DRIVETRAIN_CURRENT: current,
            topics.DRIVETRAIN_AUX_BATTERY_VOLTAGE: 14.2 if driving or charging else 12.6,
            topics.DRIVETRAIN_HV_BATTERY_ACTIVE: driving or charging or self.climate_mode != "off",
            topics.DRIVETRAIN_SOC_TARGET: self.soc_target,
            topics.DRIVETRAIN_REMAINING_CHARGING_TIME: remaining,
            topics.DRIVETRAIN_TOTAL_BATTERY_CAPACITY: self.capacity_kwh,
            topics.LOCATION_LATITUDE: latitude,
            topics.LOCATION_LONGITUDE: longitude,
            topics.LOCATION_ELEVATION: elevation,
            topics.LOCATION_HEADING: int(self.heading),
            topics.LOCATION_SPEED: round(self.speed_kmh, 1),
            topics.LOCATION_POSITION: {"latitude": latitude, "longitude": longitude, "altitude": elevation},
            topics.CLIMATE_INTERIOR_TEMPERATURE: round(self.interior_c),
            topics.CLIMATE_EXTERIOR_TEMPERATURE: round(self.exterior_c),
            topics.CLIMATE_REMOTE_CLIMATE_STATE: self.climate_mode,
            topics.CLIMATE_REMOTE_TEMPERATURE: self.remote_temperature,
            topics.CLIMATE_BACK_WINDOW_HEAT: "on" if self.rear_window_heat else "off",
            topics.CLIMATE_HEATED_SEAT_LEFT: self.heated_seats[0],
            topics.CLIMATE_HEATED_SEAT_RIGHT: self.heated_seats[1],
            topics.DRIVETRAIN_CHARGE_CURRENT_LIMIT: self.charge_current_limit,
            topics.DRIVETRAIN_CHARGING_CABLE_LOCK: self.cable_locked,
            topics.DRIVETRAIN_BATTERY_HEATING: self.battery_heating,
            topics.DRIVETRAIN_CHARGING_SCHEDULE: dict(
                zip(("startTime", "endTime", "mode"), self.charging_schedule, strict=True)
            ),
            topics.DRIVETRAIN_BATTERY_HEATING_SCHEDULE: {
                "mode": "on" if self.battery_heating_start else "off",
                "startTime": self.battery_heating_start or "00:00",
            },
            topics.DOORS_LOCKED: self.locked,
            **dict.fromkeys(topics.DOORS, False),
            "doors/boot": self.boot_open,
            **dict.fromkeys(topics.WINDOWS, False),
            **dict(zip(topics.TYRES, (2.62, 2.6, 2.58, 2.6), strict=True)),
            "lights/mainBeam": flashing,
            "lights/dippedBeam": driving,
            "lights/side": driving or flashing,
        }
        return values


def _destination(lat: float, lon: float, heading_deg: float, distance_m: float) -> tuple[float, float]:
    bearing = math.radians(heading_deg)
    d = distance_m / EARTH_RADIUS_M
    lat1, lon1 = math.radians(lat), math.radians(lon)
    lat2 = math.asin(math.sin(lat1) * math.cos(d) + math.cos(lat1) * math.sin(d) * math.cos(bearing))
    lon2 = lon1 + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(lat1), math.cos(d) - math.sin(lat1) * math.sin(lat2)
    )
    return math.degrees(lat2), (math.degrees(lon2) + 540) % 360 - 180


def make_vehicle(index: int, seed: int, clock: Callable[[], float] = time.time) -> SimulatedVehicle:
    rng = random.Random(f"{seed}:{index}")  # noqa: S311 - simulation, not cryptography
    brand, model, series, capacity = rng.choice(MODELS)
    base_lat, base_lon = BASES[index % len(BASES)]
    vin = simulated_vin(index + 1)
    vehicle = SimulatedVehicle(
        vin=vin,
        info=VehicleInfo(
            vin,
            brand,
            model,
            rng.choice((2022, 2023, 2024, 2025)),
            series,
            rng.choice(COLORS),
            configuration={"HeatedSeat": "1", "Battery": "1", "Sunroof": "0"},
        ),
        capacity_kwh=capacity,
        rng=rng,
        clock=clock,
        latitude=base_lat + rng.uniform(-0.05, 0.05),
        longitude=base_lon + rng.uniform(-0.08, 0.08),
        heading=rng.uniform(0, 360),
        soc=rng.uniform(25, 95),
        mileage_km=rng.uniform(2_000, 60_000),
        exterior_c=rng.uniform(4, 16),
        drain_per_hour=rng.uniform(0.03, 0.12),
    )
    vehicle.interior_c = vehicle.exterior_c
    # Start the fleet in mixed phases so that something moves from the first minute.
    vehicle.phase = rng.choice((Phase.PARKED, Phase.PARKED, Phase.DRIVING))
    vehicle.target_speed_kmh = 50.0 if vehicle.phase is Phase.DRIVING else 0.0
    vehicle.phase_ends_at = clock() + rng.uniform(20, 300)
    if index == 0:  # the opening: a short drive on a low battery to a fast charger
        vehicle.phase, vehicle.target_speed_kmh, vehicle.soc = Phase.DRIVING, 50.0, 22.0
        vehicle.phase_ends_at = clock() + OPENING_DRIVE_S
        vehicle.next_charge = OPENING_CHARGE
    return vehicle


class SimulatedControl(VehicleControl):
    """Commands take effect after a short, configurable delay, like a real car answering."""

    def __init__(self, vehicle: SimulatedVehicle, latency: float) -> None:
        self.vehicle = vehicle
        self.latency = latency

    async def _respond(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)
        self.vehicle.advance()

    async def lock(self) -> None:
        await self._respond()
        self.vehicle.locked = True

    async def unlock(self) -> None:
        await self._respond()
        self.vehicle.locked = False

    async def open_tailgate(self) -> None:
        await self._respond()
        self.vehicle.boot_open = True

    async def start_climate(self, mode: ClimateMode, temperature: int | None) -> None:
        await self._respond()
        if temperature is not None:
            self.vehicle.remote_temperature = temperature
        self.vehicle.climate_mode = mode
        self.vehicle.climate_since = self.vehicle.clock()

    async def stop_climate(self) -> None:
        await self._respond()
        self.vehicle.climate_mode = "off"

    async def set_heated_seats(self, left: int, right: int) -> None:
        await self._respond()
        self.vehicle.heated_seats = (left, right)

    async def set_rear_window_heat(self, on: bool) -> None:
        await self._respond()
        self.vehicle.rear_window_heat = on

    async def start_charging(self) -> None:
        await self._respond()
        v = self.vehicle
        if v.phase is Phase.DRIVING:
            raise CommandFailed("the vehicle is driving")
        if not v.charger_connected:
            raise CommandFailed("no charging cable is connected")
        if v.soc >= v.soc_target:
            raise CommandFailed(f"the battery is already at its target ({v.soc_target} %)")
        v._start_charging(v.charge_power_kw or 11.0)

    async def stop_charging(self) -> None:
        await self._respond()
        if self.vehicle.phase is not Phase.CHARGING:
            raise CommandFailed("the vehicle is not charging")
        self.vehicle._stop_charging()

    async def set_target_soc(self, percent: int) -> None:
        await self._respond()
        self.vehicle.soc_target = percent

    async def set_charge_current_limit(self, limit: ChargeCurrentLimit) -> None:
        await self._respond()
        self.vehicle.charge_current_limit = "Max" if limit == "MAX" else limit

    async def set_charging_cable_lock(self, locked: bool) -> None:
        await self._respond()
        if locked and not self.vehicle.charger_connected:
            raise CommandFailed("no charging cable is connected")
        self.vehicle.cable_locked = locked

    async def set_charging_schedule(self, mode: ChargingScheduleMode, start: dt.time, end: dt.time) -> None:
        await self._respond()
        self.vehicle.charging_schedule = (start.strftime("%H:%M"), end.strftime("%H:%M"), mode.upper())

    async def set_battery_heating(self, on: bool) -> None:
        await self._respond()
        self.vehicle.battery_heating = on

    async def set_battery_heating_schedule(self, start: dt.time | None) -> None:
        await self._respond()
        self.vehicle.battery_heating_start = start.strftime("%H:%M") if start else None

    async def find_my_car(self, mode: FindMyCarMode) -> None:
        await self._respond()
        self.vehicle.lights_until = 0.0 if mode == "stop" else self.vehicle.clock() + 30.0


class SimulatedFleet:
    expected_errors: tuple[type[Exception], ...] = (CommandFailed,)

    def __init__(
        self, count: int, seed: int, command_latency: float, clock: Callable[[], float] = time.time, first: int = 0
    ) -> None:
        """`first`: the index of the first car, so that fleets of different accounts have other VINs."""
        self._vehicles = {v.vin: v for v in (make_vehicle(i, seed, clock) for i in range(first, first + count))}
        self._latency = command_latency

    async def vehicles(self) -> list[VehicleInfo]:
        return [v.info for v in self._vehicles.values()]

    async def poll(self, vin: str) -> Mapping[str, TelemetryValue]:
        vehicle = self._vehicles[vin]
        vehicle.advance()
        return vehicle.readings()

    def control(self, vin: str) -> VehicleControl:
        return SimulatedControl(self._vehicles[vin], self._latency)

    def vehicle(self, vin: str) -> SimulatedVehicle:
        return self._vehicles[vin]

    async def heard_from(self, vin: str) -> datetime | None:
        vehicle = self._vehicles[vin]
        vehicle.advance()
        return datetime.now(UTC) if vehicle.phase is not Phase.PARKED else None

    async def new_messages(self) -> list[VehicleMessage]:
        return []  # the simulated account has no message list

    def throttled_seconds(self) -> float:
        return 0.0

    def calls_today(self, vin: str) -> int:
        return 0  # no SAIC account to spare

    async def close(self) -> None:
        pass
