from __future__ import annotations

import pytest

from common import topics
from common.values import decode, encode
from gateway.simulator import Phase, SimulatedControl, SimulatedFleet, make_vehicle, simulated_vin
from gateway.source import CommandFailed


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0  # June 2025: readings must not lie in the future

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_vins_are_stable_and_vin_shaped() -> None:
    assert simulated_vin(1) == "LSJTEST0000000001"
    assert len(simulated_vin(123)) == 17


def test_same_seed_same_fleet() -> None:
    clock = Clock()
    a, b = make_vehicle(3, seed=7, clock=clock), make_vehicle(3, seed=7, clock=clock)
    for _ in range(20):
        clock.advance(5)
        a.advance()
        b.advance()
    assert a.readings() == b.readings()


def test_readings_follow_the_upstream_tree_and_types() -> None:
    readings = make_vehicle(0, seed=1, clock=Clock()).readings()
    for key in (
        topics.DRIVETRAIN_SOC,
        topics.LOCATION_LATITUDE,
        topics.DOORS_LOCKED,
        topics.REFRESH_LAST_VEHICLE_STATE,
    ):
        assert key in readings
    for key, value in readings.items():
        assert decode(key, encode(value)) == value, key  # every reading is inside the telemetry contract
    assert set(readings[topics.LOCATION_POSITION]) == {"latitude", "longitude", "altitude"}  # type: ignore[arg-type]


def test_driving_moves_the_car_and_uses_energy() -> None:
    clock = Clock()
    car = make_vehicle(0, seed=1, clock=clock)
    car.phase, car.phase_ends_at, car.target_speed_kmh = Phase.DRIVING, clock.now + 3600, 80.0
    car.advance()
    start = (car.latitude, car.longitude, car.soc, car.mileage_km)
    for _ in range(60):
        clock.advance(5)
        car.advance()
    assert (car.latitude, car.longitude) != start[:2]
    assert car.soc < start[2]
    assert car.mileage_km - start[3] > 2  # five minutes at up to 120 km/h
    assert car.readings()[topics.DRIVETRAIN_RUNNING] is True


def test_charging_fills_to_the_target_then_stops() -> None:
    clock = Clock()
    car = make_vehicle(0, seed=1, clock=clock)
    car.soc, car.soc_target, car.charger_connected = 70.0, 80, True
    car.advance()
    car._start_charging(50.0)
    for _ in range(400):
        clock.advance(5)
        car.advance()
        if car.phase is not Phase.CHARGING:
            break
    assert car.phase is Phase.PARKED
    assert 80.0 <= car.soc < 81.0


def test_parked_car_stays_put() -> None:
    clock = Clock()
    car = make_vehicle(0, seed=1, clock=clock)
    car.phase, car.phase_ends_at, car.speed_kmh = Phase.PARKED, clock.now + 3600, 0.0
    car.advance()
    before = car.readings()
    clock.advance(5)
    car.advance()
    after = car.readings()
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {topics.REFRESH_LAST_VEHICLE_STATE}


async def test_commands_change_the_car() -> None:
    clock = Clock()
    car = make_vehicle(0, seed=1, clock=clock)
    car.phase, car.phase_ends_at = Phase.PARKED, clock.now + 3600
    control = SimulatedControl(car, latency=0)
    await control.unlock()
    assert car.readings()[topics.DOORS_LOCKED] is False
    await control.lock()
    assert car.readings()[topics.DOORS_LOCKED] is True
    await control.start_climate("on", 26)
    assert car.readings()[topics.CLIMATE_REMOTE_CLIMATE_STATE] == "on"
    interior = car.interior_c
    clock.advance(60)
    car.advance()
    assert car.interior_c > interior
    await control.find_my_car("activate")
    assert car.readings()["lights/mainBeam"] is True
    await control.find_my_car("stop")
    assert car.readings()["lights/mainBeam"] is False


async def test_charging_commands_fail_with_reasons() -> None:
    clock = Clock()
    car = make_vehicle(0, seed=1, clock=clock)
    car.phase, car.phase_ends_at, car.charger_connected, car.soc = Phase.PARKED, clock.now + 3600, False, 50.0
    control = SimulatedControl(car, latency=0)
    with pytest.raises(CommandFailed, match="no charging cable"):
        await control.start_charging()
    with pytest.raises(CommandFailed, match="not charging"):
        await control.stop_charging()
    car.charger_connected = True
    await control.start_charging()
    assert car.readings()[topics.DRIVETRAIN_CHARGING] is True
    await control.stop_charging()
    assert car.readings()[topics.DRIVETRAIN_CHARGING] is False


async def test_fleet_serves_every_vehicle() -> None:
    fleet = SimulatedFleet(5, seed=1, command_latency=0)
    infos = await fleet.vehicles()
    assert len({i.vin for i in infos}) == 5
    for info in infos:
        assert info.topic_values()[topics.INFO_MODEL] == info.model
        assert topics.DRIVETRAIN_SOC in await fleet.poll(info.vin)


def test_the_first_car_opens_with_a_drive_to_a_fast_charger_then_parks() -> None:
    clock = Clock()
    car = make_vehicle(0, seed=1, clock=clock)
    phases = []
    for _ in range(24):  # two minutes of 5 s polls
        clock.advance(5)
        car.advance()
        readings = car.readings()
        phases.append((car.phase, readings[topics.DRIVETRAIN_POWER]))
    seen = [phase for phase, _ in phases]
    assert seen[0] is Phase.DRIVING
    first_charge = seen.index(Phase.CHARGING)
    assert first_charge < seen.index(Phase.PARKED, first_charge)  # unplugged, parked
    assert {power for phase, power in phases if phase is Phase.CHARGING} == {-50.0}  # a DC charger


def test_a_top_up_ends_when_the_driver_unplugs() -> None:
    clock = Clock()
    car = make_vehicle(1, seed=1, clock=clock)
    car.soc, car.soc_target, car.charger_connected = 40.0, 80, True
    car.advance()
    car._start_charging(11.0, unplug_at=clock.now + 600)
    for _ in range(130):
        clock.advance(5)
        car.advance()
    assert car.phase is not Phase.CHARGING
    assert not car.charger_connected
    assert 40.0 < car.soc < 45.0  # ten minutes at 11 kW, far from the target


def test_a_parked_car_drains_slowly() -> None:
    clock = Clock()
    car = make_vehicle(2, seed=1, clock=clock)
    car.phase, car.phase_ends_at, car.soc = Phase.PARKED, clock.now + 86400, 60.0
    car.advance()
    for _ in range(12 * 60):  # twelve hours, polled every minute
        clock.advance(60)
        car.advance()
    assert 60.0 - 12 * 0.12 <= car.soc <= 60.0 - 12 * 0.03
    assert car.phase is Phase.PARKED
