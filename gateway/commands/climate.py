from __future__ import annotations

from common.commands import ClimateArgs, HeatedSeatsArgs, OnOffArgs
from gateway.commands.base import CommandHandler
from gateway.source import VehicleControl


class ClimateCommand(CommandHandler[ClimateArgs]):
    name = "climate"

    async def execute(self, control: VehicleControl, args: ClimateArgs) -> None:
        if args.action == "off":
            await control.stop_climate()
        else:
            await control.start_climate(args.action, args.temperature)


class HeatedSeatsCommand(CommandHandler[HeatedSeatsArgs]):
    name = "heated_seats"

    async def execute(self, control: VehicleControl, args: HeatedSeatsArgs) -> None:
        await control.set_heated_seats(args.left, args.right)


class RearWindowHeatCommand(CommandHandler[OnOffArgs]):
    name = "rear_window_heat"

    async def execute(self, control: VehicleControl, args: OnOffArgs) -> None:
        await control.set_rear_window_heat(args.action == "on")
