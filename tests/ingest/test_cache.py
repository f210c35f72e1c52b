from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common import topics
from common.values import MAX_EXTRA_KEYS
from ingest.cache import MalformedMessage, TelemetryCache

ROOT = "saic/acct/vehicles/LSJTEST0000000001"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)


def test_readings_merge_into_one_snapshot_dated_by_the_vehicle() -> None:
    cache = TelemetryCache("saic")
    cache.add(f"{ROOT}/refresh/lastVehicleState", T0.isoformat().encode())
    cache.add(f"{ROOT}/drivetrain/soc", b"80.5")
    cache.add(f"{ROOT}/doors/locked", b"True")
    [snap] = cache.take_changes()
    assert (snap.vin, snap.account, snap.ts) == ("LSJTEST0000000001", "acct", T0)
    assert snap.values[topics.DRIVETRAIN_SOC] == 80.5
    assert snap.values[topics.DOORS_LOCKED] is True
    assert snap.goes_to_history


def test_only_changes_since_the_last_flush_are_taken_but_the_snapshot_is_whole() -> None:
    cache = TelemetryCache("saic")
    cache.add(f"{ROOT}/drivetrain/soc", b"80")
    cache.take_changes()
    assert cache.take_changes() == []
    cache.add(f"{ROOT}/refresh/lastVehicleState", T1.isoformat().encode())
    cache.add(f"{ROOT}/doors/locked", b"False")
    [snap] = cache.take_changes()
    assert snap.changed == {topics.DOORS_LOCKED, topics.REFRESH_LAST_VEHICLE_STATE}
    assert snap.values[topics.DRIVETRAIN_SOC] == 80  # carried over from the earlier reading
    assert not snap.goes_to_history  # neither SoC nor location changed


def test_location_alone_goes_to_history() -> None:
    cache = TelemetryCache("saic")
    cache.add(f"{ROOT}/location/latitude", b"52.1")
    [snap] = cache.take_changes()
    assert snap.goes_to_history


def test_without_a_vehicle_time_the_receive_time_dates_the_reading() -> None:
    cache = TelemetryCache("saic")
    cache.add(f"{ROOT}/drivetrain/soc", b"80", received_at=T1)
    [snap] = cache.take_changes()
    assert snap.ts == T1


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (f"{ROOT}/drivetrain/soc", b"eighty", "expected a number"),
        (f"{ROOT}/doors/locked", b"\xff\xfe", "invalid"),
        ("elsewhere/x", b"1", "not a vehicle topic"),
        (f"{ROOT}/refresh/lastVehicleState", b"soon", "ISO-8601"),
        (f"{ROOT}/climate/remoteClimateState", b"on\x00", "PostgreSQL cannot store"),
        (f"{ROOT}/location/position", b'{"a": "\\u0000"}', "PostgreSQL cannot store"),
        (f"{ROOT}/location/position", b'{"\\ud800": 1}', "PostgreSQL cannot store"),
        (f"{ROOT}/doors/extra", b'["a"]', "not JSON"),
        ("saic/acct/vehicles/DROP TABLE vehicles;--/drivetrain/soc", b"50", "is not a VIN"),
        ("saic/acct/vehicles/lsjtest0000000001/drivetrain/soc", b"50", "is not a VIN"),
        (f"{ROOT}/drivetrain/soc", b"250", "outside the plausible range"),
    ],
)
def test_malformed_messages_are_counted_and_say_why(topic: str, payload: bytes, reason: str) -> None:
    cache = TelemetryCache("saic")
    with pytest.raises(MalformedMessage, match=reason):
        cache.add(topic, payload)
    assert cache.malformed == 1
    assert cache.take_changes() == []


def test_empty_payload_clears_nothing_and_is_not_malformed() -> None:
    cache = TelemetryCache("saic")
    cache.add(f"{ROOT}/drivetrain/soc", b"")
    assert cache.malformed == 0
    assert cache.take_changes() == []


def test_set_requests_and_their_results_are_not_telemetry() -> None:
    """The gateway retains `/set` results, as upstream; they share the categories the ingest reads."""
    cache = TelemetryCache("saic")
    cache.add(f"{ROOT}/drivetrain/socTarget/set", b"90")
    cache.add(f"{ROOT}/drivetrain/socTarget/result", b"Success", retained=True)
    cache.add(f"{ROOT}/refresh/period/active/result", b"Failed: an empty payload")
    assert cache.malformed == 0
    assert cache.take_changes() == []


def test_info_and_availability_alone_never_date_a_reading() -> None:
    # The gateway publishes info/... and `available` before its first poll; their arrival time
    # must not become the state's time, or the first real (older) reading would be refused.
    cache = TelemetryCache("saic")
    cache.add(f"{ROOT}/info/model", b"MG4 Electric", received_at=T1)
    cache.add(f"{ROOT}/available", b"online", received_at=T1)
    [early] = cache.take_changes()
    assert early.ts is None
    assert not early.goes_to_history
    cache.add(f"{ROOT}/refresh/lastVehicleState", T0.isoformat().encode(), received_at=T1)
    cache.add(f"{ROOT}/drivetrain/soc", b"80", received_at=T1)
    [reading] = cache.take_changes()
    assert reading.ts == T0
    assert reading.values[topics.INFO_MODEL] == "MG4 Electric"


def test_every_reading_between_two_flushes_is_kept() -> None:
    cache = TelemetryCache("saic")
    for n, soc in enumerate((80, 79, 78)):
        ts = datetime(2026, 1, 1, 12, 0, n, tzinfo=UTC)
        cache.add(f"{ROOT}/refresh/lastVehicleState", ts.isoformat().encode())
        cache.add(f"{ROOT}/drivetrain/soc", str(soc).encode())
    snaps = cache.take_changes()
    assert [(s.ts.second if s.ts else None, s.values[topics.DRIVETRAIN_SOC]) for s in snaps] == [
        (0, 80),
        (1, 79),
        (2, 78),
    ]
    assert all(s.goes_to_history for s in snaps)
    assert cache.take_changes() == []


def test_keys_outside_the_contract_are_bounded_per_vehicle() -> None:
    cache = TelemetryCache("saic")
    for n in range(MAX_EXTRA_KEYS):
        cache.add(f"{ROOT}/drivetrain/futureKey{n}", b"1")
    cache.add(f"{ROOT}/drivetrain/futureKey0", b"2")  # a known extra key may change
    with pytest.raises(MalformedMessage, match=f"more than {MAX_EXTRA_KEYS} keys outside the contract"):
        cache.add(f"{ROOT}/drivetrain/oneTooMany", b"1")
    cache.add(f"{ROOT}/drivetrain/soc", b"50")  # contract keys are never limited


def test_a_retained_resend_of_what_is_known_is_no_reading() -> None:
    cache = TelemetryCache("saic")
    cache.add(f"{ROOT}/refresh/lastVehicleState", b"2026-05-01T08:00:00+00:00", retained=True)
    cache.add(f"{ROOT}/drivetrain/soc", b"80", retained=True)  # nothing known yet: a reading
    assert len(cache.take_changes()) == 1
    cache.add(f"{ROOT}/refresh/lastVehicleState", b"2026-05-01T08:00:00+00:00", retained=True)
    cache.add(f"{ROOT}/drivetrain/soc", b"80", retained=True)  # the broker again, after a reconnect
    assert cache.take_changes() == []
    cache.add(f"{ROOT}/drivetrain/soc", b"80")  # the same value published live is the car's
    assert len(cache.take_changes()) == 1
    cache.add(f"{ROOT}/drivetrain/soc", b"79", retained=True)  # a change missed while away
    assert len(cache.take_changes()) == 1


def test_what_is_stored_seeds_the_cache() -> None:
    cache = TelemetryCache("saic")
    stored = {
        "drivetrain/soc": 80,
        "refresh/lastVehicleState": "2026-05-01T08:00:00+00:00",
        "bogus": 1,
        **{f"drivetrain/futureKey{n}": n for n in range(MAX_EXTRA_KEYS)},
    }
    cache.seed("LSJTEST0000000001", "acct", stored)
    cache.seed("junk", "acct", stored)  # never a vehicle of its own
    assert len(cache) == 1
    cache.add(f"{ROOT}/refresh/lastVehicleState", b"2026-05-01T08:00:00+00:00", retained=True)
    cache.add(f"{ROOT}/drivetrain/soc", b"80.0", retained=True)
    assert cache.take_changes() == []
    with pytest.raises(MalformedMessage, match="keys outside the contract"):  # the stored ones count
        cache.add(f"{ROOT}/drivetrain/oneTooMany", b"1")


def test_only_live_telemetry_moves_a_car_to_another_account() -> None:
    """An ingest starting up gets every retained tree, a stale one of an account the car has left too:
    commands follow the vehicle's account, so a retained value must not move it there."""
    cache = TelemetryCache("saic")
    stale = "saic/old@example.com/vehicles/LSJTEST0000000001"
    cache.add(f"{ROOT}/drivetrain/soc", b"50", retained=True)
    cache.add(f"{stale}/drivetrain/soc", b"40", retained=True)
    [snap] = cache.take_changes()
    assert snap.account == "acct"
    cache.add(f"{stale}/drivetrain/soc", b"41")  # live: the car really is on that account now
    [snap] = cache.take_changes()
    assert snap.account == "old@example.com"
