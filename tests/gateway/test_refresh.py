"""When each vehicle is polled: modes, the active / sleep / inactive periods and error backoff."""

from __future__ import annotations

from common import topics
from gateway.refresh import RefreshMode, RefreshPeriods, VehicleRefresh


def refresh() -> VehicleRefresh:
    return VehicleRefresh(RefreshPeriods(active=5, after_shutdown=30, inactive=600, inactive_grace=300, error_max=120))


def test_a_new_vehicle_is_due_at_once_then_inactive() -> None:
    r = refresh()
    assert r.next_due(0) == 0
    r.started(0)
    r.succeeded(1, {topics.DRIVETRAIN_RUNNING: False})
    assert r.next_due(1) == 600


def test_active_then_sleep_then_inactive() -> None:
    r = refresh()
    r.started(0)
    r.succeeded(0, {topics.DRIVETRAIN_CHARGING: True})
    assert r.interval(0) == 5
    r.started(5)
    r.succeeded(5, {topics.DRIVETRAIN_CHARGING: False})  # charging ended: the car goes to sleep
    assert r.interval(10) == 30
    assert r.interval(5 + 301) == 600


def test_failures_back_off_exponentially_up_to_the_limit() -> None:
    r = refresh()
    intervals = []
    for n in range(8):
        r.started(n)
        r.failed(n)
        intervals.append(r.interval(n))
    assert intervals == [5, 10, 20, 40, 80, 120, 120, 120]
    r.started(100)
    r.succeeded(100, {})
    assert r.failures == 0


def test_force_polls_once_then_returns_to_the_previous_mode() -> None:
    r = refresh()
    r.set_mode(RefreshMode.OFF)
    assert r.next_due(0) is None
    r.set_mode(RefreshMode.FORCE)
    r.set_mode(RefreshMode.FORCE)  # a second force does not forget the mode before it
    assert r.next_due(0) == 0
    r.started(0)
    assert r.mode is RefreshMode.OFF
    r.succeeded(1, {})
    assert r.next_due(1) is None
