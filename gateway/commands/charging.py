from __future__ import annotations

from common.commands import ChargingArgs
from gateway.commands.base import CommandHandler
from gateway.source import VehicleControl


class ChargingCommand(CommandHandler[ChargingArgs]):
    name = "charging"

    async def execute(self, control: VehicleControl, args: ChargingArgs) -> None:
        if args.action == "start":
            await control.start_charging()
        else:
            await control.stop_charging()
