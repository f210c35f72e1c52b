from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from common import topics
from common.values import decode, encode


@pytest.mark.parametrize(
    ("value", "payload"),
    [
        (True, "True"),
        (False, "False"),
        (80, "80"),
        (80.5, "80.5"),
        ("on", "on"),
        ({"latitude": 1.5}, '{\n  "latitude": 1.5\n}'),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05+00:00"),
        (datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))), "2026-01-02T03:04:05+00:00"),
    ],
)
def test_encode_matches_the_upstream_gateway(value: object, payload: str) -> None:
    assert encode(value) == payload  # type: ignore[arg-type]


def test_decode_known_keys_round_trips() -> None:
    stamp = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert decode(topics.DRIVETRAIN_SOC, b"55.5") == 55.5
    assert decode(topics.DOORS_LOCKED, b"True") is True
    assert decode(topics.LOCATION_HEADING, b"270") == 270
    assert decode(topics.LOCATION_POSITION, encode({"latitude": 1.0}).encode()) == {"latitude": 1.0}
    assert decode(topics.REFRESH_LAST_VEHICLE_STATE, encode(stamp).encode()) == stamp


@pytest.mark.parametrize(
    ("key", "payload", "message"),
    [
        (topics.DRIVETRAIN_SOC, b"lots", "expected a number"),
        (topics.DRIVETRAIN_SOC, b"nan", "finite"),
        (topics.DOORS_LOCKED, b"true", "expected True or False"),
        (topics.LOCATION_HEADING, b"1.5", "expected an integer"),
        (topics.LOCATION_POSITION, b"{", "expected JSON"),
        (topics.REFRESH_LAST_VEHICLE_STATE, b"yesterday", "ISO-8601"),
        (topics.REFRESH_LAST_VEHICLE_STATE, b"2026-01-01T00:00:00", "no time zone"),
    ],
)
def test_decode_rejects_malformed_payloads_with_a_reason(key: str, payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode(key, payload)


def test_decode_unknown_keys_guesses_the_type() -> None:
    assert decode("obc/current", b"12") == 12
    assert decode("obc/voltage", b"230.5") == 230.5
    assert decode("x/flag", b"False") is False
    assert decode("x/json", b'{"a": 1}') == {"a": 1}
    assert decode("x/text", b"CHARGING_1") == "CHARGING_1"
