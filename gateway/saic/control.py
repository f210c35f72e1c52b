"""Remote commands for one vehicle, mapped to the library's calls (reference/saic.md 1.2)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from saic_ismart_client_ng import SaicApi
from saic_ismart_client_ng.api.vehicle_charging.schema import (
    ChargeCurrentLimitCode,
    ScheduledChargingMode,
    TargetBatteryCode,
)
from saic_ismart_client_ng.exceptions import SaicApiException

from gateway.saic.guards import CircuitOpen
from gateway.saic.session import SaicSession
from gateway.source import (
    ChargeCurrentLimit,
    ChargingScheduleMode,
    ClimateMode,
    CommandFailed,
    FindMyCarMode,
    VehicleControl,
    VehicleInfo,
)

DEFAULT_TEMPERATURE = 22


def temperature_index(series: str, celsius: int) -> int:
    """The A/C's temperature index: the MG4 (EH32) spans 17-33 degC, the other models 16-28 degC."""
    if series.startswith("EH32"):
        return 3 + min(max(celsius, 17), 33) - 17
    return 2 + min(max(celsius, 16), 28) - 16


class SaicControl(VehicleControl):
    def __init__(
        self,
        session: SaicSession,
        info: VehicleInfo,
        known_soc_target: Callable[[], int | None],
        schedule_changed: Callable[[], object],
    ) -> None:
        self.session = session
        self.info = info
        self.vin = info.vin
        self._known_soc_target = known_soc_target
        self._schedule_changed = schedule_changed  # the next poll reads the battery-heating schedule again

    async def _send(self, operation: str, request: Callable[[SaicApi], Awaitable[object]]) -> None:
        try:
            await self.session.call(operation, request, vin=self.vin, urgent=True)
        except (SaicApiException, CircuitOpen) as exc:
            raise CommandFailed(str(exc)) from exc

    async def lock(self) -> None:
        await self._send("lock", lambda api: api.lock_vehicle(self.vin))

    async def unlock(self) -> None:
        await self._send("unlock", lambda api: api.unlock_vehicle(self.vin))

    async def open_tailgate(self) -> None:
        await self._send("open_tailgate", lambda api: api.open_tailgate(self.vin))

    async def start_climate(self, mode: ClimateMode, temperature: int | None) -> None:
        match mode:
            case "on":
                index = temperature_index(self.info.series, temperature or DEFAULT_TEMPERATURE)
                await self._send("start_ac", lambda api: api.start_ac(self.vin, temperature_idx=index))
            case "front":
                await self._send("start_front_defrost", lambda api: api.start_front_defrost(self.vin))
            case "blowingonly":
                await self._send("start_ac_blowing", lambda api: api.start_ac_blowing(self.vin))

    async def stop_climate(self) -> None:
        await self._send("stop_ac", lambda api: api.stop_ac(self.vin))

    async def set_heated_seats(self, left: int, right: int) -> None:
        await self._send(
            "heated_seats",
            lambda api: api.control_heated_seats(self.vin, left_side_level=left, right_side_level=right),
        )

    async def set_rear_window_heat(self, on: bool) -> None:
        await self._send("rear_window_heat", lambda api: api.control_rear_window_heat(self.vin, enable=on))

    async def start_charging(self) -> None:
        await self._send("start_charging", lambda api: api.control_charging(self.vin, stop_charging=False))

    async def stop_charging(self) -> None:
        await self._send("stop_charging", lambda api: api.control_charging(self.vin, stop_charging=True))

    async def set_target_soc(self, percent: int) -> None:
        target = TargetBatteryCode.from_percentage(percent)
        await self._send("target_soc", lambda api: api.set_target_battery_soc(self.vin, target_soc=target))

    async def set_charge_current_limit(self, limit: ChargeCurrentLimit) -> None:
        # The API sets both at once; upstream resends the current target with the new limit.
        soc_target = self._known_soc_target()
        if soc_target is None:
            raise CommandFailed("the current target SoC is not known yet; try again after the next poll")
        target, code = TargetBatteryCode.from_percentage(soc_target), ChargeCurrentLimitCode.to_code(limit)
        await self._send(
            "charge_current_limit",
            lambda api: api.set_target_battery_soc(self.vin, target_soc=target, charge_current_limit=code),
        )

    async def set_charging_cable_lock(self, locked: bool) -> None:
        await self._send("charging_cable_lock", lambda api: api.control_charging_port_lock(self.vin, unlock=not locked))

    async def set_charging_schedule(self, mode: ChargingScheduleMode, start: dt.time, end: dt.time) -> None:
        code = ScheduledChargingMode[mode.upper()]
        await self._send(
            "charging_schedule",
            lambda api: api.set_schedule_charging(self.vin, start_time=start, end_time=end, mode=code),
        )

    async def set_battery_heating(self, on: bool) -> None:
        await self._send("battery_heating", lambda api: api.control_battery_heating(self.vin, enable=on))

    async def set_battery_heating_schedule(self, start: dt.time | None) -> None:
        try:
            if start is None:
                await self._send("battery_heating_schedule", lambda api: api.disable_schedule_battery_heating(self.vin))
            else:
                await self._send(
                    "battery_heating_schedule",
                    lambda api: api.enable_schedule_battery_heating(self.vin, start_time=start),
                )
        finally:  # a failed command may have changed it too
            self._schedule_changed()

    async def find_my_car(self, mode: FindMyCarMode) -> None:
        await self._send(
            "find_my_car",
            lambda api: api.control_find_my_car(
                self.vin,
                should_stop=mode == "stop",
                with_horn=mode in ("activate", "horn_only"),
                with_lights=mode in ("activate", "lights_only"),
            ),
        )
