"""The command contract: `<root>/cmd/<command>` requests and `<root>/cmd/<command>/result` outcomes.

The request's `id` is echoed in the result, so concurrent commands never mix up their outcomes.
Argument schemas live here because the API validates them before publishing and the gateway again
before acting.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class CommandStatus(StrEnum):
    RUNNING = "running"
    """Not an outcome: the gateway has started the command on the car, and answers by `answer_by`."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    """Never started: its `expires_at` passed first."""


START_MARGIN = timedelta(seconds=1)
"""The gateway starts no command with less than this left before it expires, so that its `running`
reaches the API before the API's expiry sweep (which allows 2 s more) can call it expired."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(_Args):
    pass


class ClimateArgs(_Args):
    action: Literal["on", "off", "front", "blowingonly"] = Field(
        description="on: heat or cool to the temperature; front: defrost; blowingonly: fan only"
    )
    temperature: int | None = Field(None, ge=16, le=28, description="target cabin temperature, degC")


class ChargingArgs(_Args):
    action: Literal["start", "stop"]


class FindMyCarArgs(_Args):
    mode: Literal["activate", "lights_only", "horn_only", "stop"] = "activate"


type ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="local time, HH:MM")]


class TargetSocArgs(_Args):
    percent: Literal[40, 50, 60, 70, 80, 90, 100] = Field(description="charge until this state of charge, %")


class ChargeCurrentLimitArgs(_Args):
    limit: Literal["6A", "8A", "16A", "MAX"] = Field(description="AC charging current limit")


class HeatedSeatsArgs(_Args):
    left: int = Field(ge=0, le=3, description="driver seat level, 0 = off")
    right: int = Field(ge=0, le=3, description="passenger seat level, 0 = off")


class OnOffArgs(_Args):
    action: Literal["on", "off"]


class CableLockArgs(_Args):
    action: Literal["lock", "unlock"]


class ChargingScheduleArgs(_Args):
    mode: Literal["until_configured_time", "until_configured_soc", "disabled"]
    start_time: ClockTime
    end_time: ClockTime


class BatteryHeatingScheduleArgs(_Args):
    mode: Literal["on", "off"]
    start_time: ClockTime | None = Field(None, description="required when mode is on")

    @model_validator(mode="after")
    def _start_time_when_on(self) -> BatteryHeatingScheduleArgs:
        if self.mode == "on" and self.start_time is None:
            raise ValueError("start_time is required when mode is on")
        return self


COMMAND_ARGS: dict[str, type[_Args]] = {
    "lock": NoArgs,
    "unlock": NoArgs,
    "tailgate": NoArgs,
    "climate": ClimateArgs,
    "heated_seats": HeatedSeatsArgs,
    "rear_window_heat": OnOffArgs,
    "charging": ChargingArgs,
    "target_soc": TargetSocArgs,
    "charge_current_limit": ChargeCurrentLimitArgs,
    "charging_cable_lock": CableLockArgs,
    "charging_schedule": ChargingScheduleArgs,
    "battery_heating": OnOffArgs,
    "battery_heating_schedule": BatteryHeatingScheduleArgs,
    "find_my_car": FindMyCarArgs,
}


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: UUID
    args: dict[str, Any] = Field(default_factory=dict)
    requested_by: str | None = None
    expires_at: datetime | None = None

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))

    def too_late_to_start(self) -> bool:
        return self.is_expired(datetime.now(UTC) + START_MARGIN)


class CommandResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID | None = Field(description="the request's id; null only when the request had no usable id")
    status: CommandStatus
    error: str | None = None
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    """For `running`: when it started."""
    answer_by: datetime | None = Field(default=None, description="for `running`: the outcome comes by then, or never")


class InvalidArguments(ValueError):
    """Arguments that do not fit a command's schema; the message says which and why."""


def validate_args(command: str, args: dict[str, Any]) -> _Args:
    schema = COMMAND_ARGS.get(command)
    if schema is None:
        raise InvalidArguments(f"unknown command {command!r}; known: {', '.join(COMMAND_ARGS)}")
    try:
        return schema.model_validate(args)
    except ValidationError as exc:
        raise InvalidArguments(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
