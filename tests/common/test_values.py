from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from common import topics
from common.values import CONTRACT, Kind, decode, encode, is_extra, is_vin


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
        (topics.DRIVETRAIN_SOC, b"nan", "expected a number"),
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


@pytest.mark.parametrize(
    ("key", "payload", "message"),
    [
        # What the acceptance run stored as valid (issue 13).
        (topics.DRIVETRAIN_SOC, b"250", "outside the plausible range 0..100 %"),
        (topics.DRIVETRAIN_SOC, b"-50", "outside the plausible range"),
        (topics.DRIVETRAIN_SOC, b"1.2e29", "outside the plausible range"),
        (topics.LOCATION_LATITUDE, b"-1.8e308", "finite"),
        (topics.LOCATION_LONGITUDE, b"999.5", "outside the plausible range -180..180"),
        (topics.DRIVETRAIN_SOC_TARGET, b"9" * 4000, "more than the 64 allowed"),
        ("drivetrain/bogusKey", b"x" * 1_000_000, "more than the 64 allowed"),
        ("drivetrain/" + "/".join(["k"] * 150), b"1", "not a key of the telemetry contract"),
        # Numbers as upstream writes them, nothing Python's int() or float() would also take.
        (topics.DRIVETRAIN_SOC, "١٠".encode(), "expected a number"),
        (topics.DRIVETRAIN_SOC_TARGET, b" 80", "expected an integer"),
        (topics.DRIVETRAIN_SOC_TARGET, b"8_0", "expected an integer"),
        (topics.DRIVETRAIN_SOC, b"inf", "expected a number"),
        # Objects: bounded, flat, fields in range.
        (topics.LOCATION_POSITION, b"[" * 20_000, "more than the 512 allowed"),
        (topics.LOCATION_POSITION, b"[1, 2]", "expected a JSON object"),
        (topics.LOCATION_POSITION, b'{"latitude": 91, "longitude": 0}', "location/position.latitude: 91"),
        (topics.LOCATION_POSITION, b'{"latitude": {"a": 1}}', "nested values"),
        # Times a car cannot have read at.
        (topics.REFRESH_LAST_VEHICLE_STATE, b"0001-01-01T00:00:00+00:00", "outside 2000-01-01"),
        (topics.REFRESH_LAST_VEHICLE_STATE, b"9999-12-31T00:00:00+00:00", "outside 2000-01-01"),
        # Future keys are scalars, never JSON.
        ("drivetrain/newThing", b'{"a": 1}', "not JSON"),
        ("obc/unknownCategory/deep/key", b"1", "not a key of the telemetry contract"),
        ("bogus/key", b"1", "not a key of the telemetry contract"),
    ],
)
def test_values_outside_the_contract_are_refused_with_a_reason(key: str, payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        decode(key, payload)


def test_keys_upstream_may_add_are_taken_as_bounded_scalars() -> None:
    assert is_extra("drivetrain/someFutureKey")
    assert decode("drivetrain/someFutureKey", b"12") == 12
    assert decode("climate/someFutureKey", b"230.5") == 230.5
    assert decode("windows/someFutureKey", b"False") is False
    assert decode("drivetrain/someFutureKey", b"CHARGING_1") == "CHARGING_1"
    assert not is_extra(topics.DRIVETRAIN_SOC)
    assert decode("info/configuration/HeatedSeat", b"1") == "1"  # a family of keys, not an extra


def test_every_contract_names_its_unit_and_range() -> None:
    for key, contract in CONTRACT.items():
        if contract.kind in (Kind.INT, Kind.FLOAT):
            assert contract.low is not None, key
            assert contract.high is not None, key
            assert contract.unit is not None, key


@pytest.mark.parametrize(
    ("vin", "valid"),
    [
        ("LSJTEST0000000001", True),
        ("WVWZZZ1JZXW000001", True),
        ("LSJSIM00000000001", False),  # I is not in the VIN alphabet
        ("..", False),
        ("A", False),
        ("DROP TABLE vehicles;--", False),
        ("LSJTEST000000000\N{AUTOMOBILE}", False),
        ("lsjtest0000000001", False),
        ("LSJTEST0000000001 ", False),
        ("X" * 64, False),
    ],
)
def test_a_vin_is_17_characters_of_the_vin_alphabet(vin: str, valid: bool) -> None:
    assert is_vin(vin) is valid
