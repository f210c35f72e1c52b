"""The device password: good in its hour window and the next, once, and only with the device's secret."""

from __future__ import annotations

import pytest

from common import device_credentials as dc

NOW = 1_796_000_000  # 2026-11-30, some minutes into an hour window
DEVICE = dc.device_id_for("00:1a:2b:3c:4d:5e")
SECRET = dc.new_secret()


def test_the_device_id_is_32_hex_characters_of_the_mac_however_written() -> None:
    spellings = ("00:1a:2b:3c:4d:5e", "00-1A-2B-3C-4D-5E", "001a2b3c4d5e", " 00:1A:2b:3c:4d:5e ")
    assert {dc.device_id_for(mac) for mac in spellings} == {DEVICE}
    assert len(DEVICE) == 32
    assert int(DEVICE, 16) >= 0
    assert dc.device_id_for("00:1a:2b:3c:4d:5f") != DEVICE
    for bad in ("00:1a:2b:3c:4d", "00:1a-2b:3c:4d:5e", "zz:1a:2b:3c:4d:5e", ""):
        with pytest.raises(ValueError, match="six bytes"):
            dc.normalize_mac(bad)


@pytest.mark.parametrize(
    ("signed_at", "newest_used", "outcome"),
    [
        (NOW, 0, NOW),
        (NOW - NOW % dc.WINDOW - 1, 0, NOW - NOW % dc.WINDOW - 1),  # the previous window's last second
        (NOW - NOW % dc.WINDOW - dc.WINDOW - 1, 0, "expired"),  # the window before that
        (NOW + dc.CLOCK_SKEW + 1, 0, "future"),
        (NOW + dc.CLOCK_SKEW, 0, NOW + dc.CLOCK_SKEW),
        (NOW, NOW, "replayed"),
        (NOW - 5, NOW, "replayed"),
        (NOW + 1, NOW, NOW + 1),
    ],
)
def test_a_password_is_good_in_its_window_and_the_next_once(signed_at: int, newest_used: int, outcome: object) -> None:
    checked = dc.check(SECRET, DEVICE, dc.password(SECRET, DEVICE, signed_at), NOW, newest_used)
    if isinstance(outcome, int):
        assert checked == outcome
    else:
        assert isinstance(checked, dc.Refusal)
        assert str(outcome) in checked.reason


@pytest.mark.parametrize(
    "presented",
    [
        dc.password(dc.new_secret(), DEVICE, NOW),  # another secret
        dc.password(SECRET, dc.device_id_for("00:00:00:00:00:01"), NOW),  # another device's id signed
        f"{NOW + 1}:{dc.sign(SECRET, DEVICE, NOW)}",  # a signature moved to another time
        f"{NOW}:{'0' * 64}",
        "hunter2",
        "",
        f"{NOW}:{dc.sign(SECRET, DEVICE, NOW).upper()}",
    ],
)
def test_a_password_not_signed_with_the_secret_for_this_device_and_time_is_refused(presented: str) -> None:
    assert isinstance(dc.check(SECRET, DEVICE, presented, NOW, 0), dc.Refusal)
