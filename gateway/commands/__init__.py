"""Command handlers, one per command of the contract in common.commands."""

from __future__ import annotations

from typing import Any

from common.commands import COMMAND_ARGS
from gateway.commands.base import CommandHandler
from gateway.commands.charging import (
    BatteryHeatingCommand,
    BatteryHeatingScheduleCommand,
    ChargeCurrentLimitCommand,
    ChargingCableLockCommand,
    ChargingCommand,
    ChargingScheduleCommand,
    TargetSocCommand,
)
from gateway.commands.climate import ClimateCommand, HeatedSeatsCommand, RearWindowHeatCommand
from gateway.commands.doors import LockCommand, TailgateCommand, UnlockCommand
from gateway.commands.location import FindMyCarCommand

ALL_COMMAND_HANDLERS: dict[str, CommandHandler[Any]] = {
    h.name: h
    for h in (
        LockCommand(),
        UnlockCommand(),
        TailgateCommand(),
        ClimateCommand(),
        HeatedSeatsCommand(),
        RearWindowHeatCommand(),
        ChargingCommand(),
        TargetSocCommand(),
        ChargeCurrentLimitCommand(),
        ChargingCableLockCommand(),
        ChargingScheduleCommand(),
        BatteryHeatingCommand(),
        BatteryHeatingScheduleCommand(),
        FindMyCarCommand(),
    )
}
assert ALL_COMMAND_HANDLERS.keys() == COMMAND_ARGS.keys(), "every command in the contract needs a handler"

__all__ = ["ALL_COMMAND_HANDLERS", "CommandHandler"]
