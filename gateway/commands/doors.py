from __future__ import annotations

from common.commands import NoArgs
from gateway.commands.base import CommandHandler
from gateway.source import VehicleControl


class LockCommand(CommandHandler[NoArgs]):
    name = "lock"

    async def execute(self, control: VehicleControl, args: NoArgs) -> None:
        await control.lock()


class UnlockCommand(CommandHandler[NoArgs]):
    name = "unlock"

    async def execute(self, control: VehicleControl, args: NoArgs) -> None:
        await control.unlock()


class TailgateCommand(CommandHandler[NoArgs]):
    name = "tailgate"

    async def execute(self, control: VehicleControl, args: NoArgs) -> None:
        await control.open_tailgate()
