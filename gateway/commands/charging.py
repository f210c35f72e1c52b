from __future__ import annotations

from datetime import time

from common.commands import (
    BatteryHeatingScheduleArgs,
    CableLockArgs,
    ChargeCurrentLimitArgs,
    ChargingArgs,
    ChargingScheduleArgs,
    OnOffArgs,
    TargetSocArgs,
)
from gateway.commands.base import CommandHandler
from gateway.source import VehicleControl


class ChargingCommand(CommandHandler[ChargingArgs]):
    name = "charging"

    async def execute(self, control: VehicleControl, args: ChargingArgs) -> None:
        if args.action == "start":
            await control.start_charging()
        else:
            await control.stop_charging()


class TargetSocCommand(CommandHandler[TargetSocArgs]):
    name = "target_soc"

    async def execute(self, control: VehicleControl, args: TargetSocArgs) -> None:
        await control.set_target_soc(args.percent)


class ChargeCurrentLimitCommand(CommandHandler[ChargeCurrentLimitArgs]):
    name = "charge_current_limit"

    async def execute(self, control: VehicleControl, args: ChargeCurrentLimitArgs) -> None:
        await control.set_charge_current_limit(args.limit)


class ChargingCableLockCommand(CommandHandler[CableLockArgs]):
    name = "charging_cable_lock"

    async def execute(self, control: VehicleControl, args: CableLockArgs) -> None:
        await control.set_charging_cable_lock(args.action == "lock")


class ChargingScheduleCommand(CommandHandler[ChargingScheduleArgs]):
    name = "charging_schedule"

    async def execute(self, control: VehicleControl, args: ChargingScheduleArgs) -> None:
        await control.set_charging_schedule(
            args.mode, time.fromisoformat(args.start_time), time.fromisoformat(args.end_time)
        )


class BatteryHeatingCommand(CommandHandler[OnOffArgs]):
    name = "battery_heating"

    async def execute(self, control: VehicleControl, args: OnOffArgs) -> None:
        await control.set_battery_heating(args.action == "on")


class BatteryHeatingScheduleCommand(CommandHandler[BatteryHeatingScheduleArgs]):
    name = "battery_heating_schedule"

    async def execute(self, control: VehicleControl, args: BatteryHeatingScheduleArgs) -> None:
        start = time.fromisoformat(args.start_time) if args.mode == "on" and args.start_time else None
        await control.set_battery_heating_schedule(start)
