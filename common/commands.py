"""The command contract: `<root>/cmd/<command>` requests and `<root>/cmd/<command>/result` outcomes.

The request's `id` is echoed in the result, so concurrent commands never mix up their outcomes.
Argument schemas live here because the API validates them before publishing and the gateway again
before acting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class CommandStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"


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


COMMAND_ARGS: dict[str, type[_Args]] = {
    "lock": NoArgs,
    "unlock": NoArgs,
    "climate": ClimateArgs,
    "charging": ChargingArgs,
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


class CommandResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: UUID | None = Field(description="the request's id; null only when the request had no usable id")
    status: CommandStatus
    error: str | None = None
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


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
