from __future__ import annotations

from common.commands import ClimateArgs
from gateway.commands.base import CommandHandler
from gateway.source import VehicleControl


class ClimateCommand(CommandHandler[ClimateArgs]):
    name = "climate"

    async def execute(self, control: VehicleControl, args: ClimateArgs) -> None:
        if args.action == "off":
            await control.stop_climate()
        else:
            await control.start_climate(args.action, args.temperature)
