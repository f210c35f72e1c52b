from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from common.commands import COMMAND_ARGS, CommandRequest, InvalidArguments, validate_args


def test_every_command_has_an_argument_schema() -> None:
    assert set(COMMAND_ARGS) == {"lock", "unlock", "climate", "charging", "find_my_car"}


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
