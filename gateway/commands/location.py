from __future__ import annotations

from common.commands import FindMyCarArgs
from gateway.commands.base import CommandHandler
from gateway.source import VehicleControl


class FindMyCarCommand(CommandHandler[FindMyCarArgs]):
    name = "find_my_car"

    async def execute(self, control: VehicleControl, args: FindMyCarArgs) -> None:
        await control.find_my_car(args.mode)
