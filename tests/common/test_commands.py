from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from common.commands import COMMAND_ARGS, CommandRequest, InvalidArguments, validate_args


def test_every_command_has_an_argument_schema() -> None:
    assert {"lock", "unlock", "climate", "charging", "find_my_car"} <= set(COMMAND_ARGS)
    assert {"tailgate", "target_soc", "charge_current_limit", "heated_seats", "battery_heating"} <= set(COMMAND_ARGS)


@pytest.mark.parametrize(
    ("command", "args", "problem"),
    [
        ("target_soc", {"percent": 45}, "percent"),
        ("heated_seats", {"left": 4, "right": 0}, "left"),
        ("charging_schedule", {"mode": "disabled", "start_time": "25:00", "end_time": "06:00"}, "start_time"),
        ("battery_heating_schedule", {"mode": "on"}, "start_time is required"),
        ("charge_current_limit", {"limit": "32A"}, "limit"),
    ],
)
def test_new_commands_reject_bad_arguments(command: str, args: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidArguments, match=problem):
        validate_args(command, args)


def test_valid_arguments() -> None:
    assert validate_args("climate", {"action": "on", "temperature": 21}).model_dump() == {
        "action": "on",
        "temperature": 21,
    }
    assert validate_args("find_my_car", {}).model_dump() == {"mode": "activate"}


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("climate", {}, "action: Field required"),
        ("climate", {"action": "hot"}, "action: Input should be"),
        ("climate", {"action": "on", "temperature": 40}, "temperature: Input should be less than or equal to 28"),
        ("lock", {"force": True}, "force: Extra inputs are not permitted"),
        ("charging", {"action": 1}, "action: Input should be"),
        ("fly", {}, "unknown command 'fly'"),
    ],
)
def test_invalid_arguments_say_what_is_wrong(command: str, args: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArguments, match=message):
        validate_args(command, args)


def test_request_expiry() -> None:
    now = datetime.now(UTC)
    assert CommandRequest(id=uuid4(), expires_at=now - timedelta(seconds=1)).is_expired()
    assert not CommandRequest(id=uuid4(), expires_at=now + timedelta(seconds=10)).is_expired()
    assert not CommandRequest(id=uuid4()).is_expired()
