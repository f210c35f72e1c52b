"""One class per command: the name it answers to and how its arguments drive the vehicle."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from pydantic import BaseModel

from gateway.source import VehicleControl


class CommandHandler[ArgsT: BaseModel](ABC):
    name: ClassVar[str]

    @abstractmethod
    async def execute(self, control: VehicleControl, args: ArgsT) -> None:
        """Carry the command out; raise CommandFailed with a user-facing reason when it fails."""
