"""When each vehicle is polled: profiles, phases, modes and error backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common import topics
from gateway.call_budget import DailyCalls, seconds_to_next_utc_day
from gateway.refresh import (
    COMMAND_ACTIVITY,
    COMMAND_POLL_COOLDOWN,
    PollingPhase,
    RefreshMode,
    RefreshPeriods,
    VehicleRefresh,
)
from gateway.settings import GatewaySettings


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
    assert (r.phase(0), r.interval(0)) == (PollingPhase.ACTIVE, 5)
    r.started(5)
    r.succeeded(5, {topics.DRIVETRAIN_CHARGING: False})  # charging ended: the car goes to sleep
    assert (r.phase(10), r.interval(10)) == (PollingPhase.AFTER_SHUTDOWN, 30)
    assert (r.phase(5 + 301), r.interval(5 + 301)) == (PollingPhase.INACTIVE, 600)


def test_failures_back_off_exponentially_up_to_the_limit() -> None:
    r = refresh()
    intervals = []
    for n in range(8):
        r.started(n)
        r.failed(n)
        intervals.append(r.interval(n))
    assert intervals == [5, 10, 20, 40, 80, 120, 120, 120]
    assert r.phase(8) is PollingPhase.ERROR
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


def test_a_command_makes_a_parked_car_active_then_after_shutdown() -> None:
    """Right after a command the car's state is changing: poll it at the active period for a while,
    then as after a shutdown, then slowly again."""
    r = refresh()
    r.started(0)
    r.succeeded(0, {topics.DRIVETRAIN_RUNNING: False})
    assert r.phase(1) is PollingPhase.INACTIVE
    r.commanded(100)
    assert (r.phase(101), r.interval(101)) == (PollingPhase.ACTIVE, 5)
    ended = 100 + COMMAND_ACTIVITY
    assert (r.phase(ended + 1), r.interval(ended + 1)) == (PollingPhase.AFTER_SHUTDOWN, 30)
    assert r.phase(ended + 301) is PollingPhase.INACTIVE
    r.set_mode(RefreshMode.OFF)
    assert r.phase(ended + 301) is PollingPhase.OFF


def slow_refresh() -> VehicleRefresh:
    """Periods well apart from COMMAND_POLL_COOLDOWN, so that what a command brings forward shows."""
    return VehicleRefresh(
        RefreshPeriods(active=60, after_shutdown=120, inactive=600, inactive_grace=300, error_max=120)
    )


def test_a_burst_of_commands_shares_one_poll_after_the_first() -> None:
    """A command's car is polled at once; the commands that end within COMMAND_POLL_COOLDOWN of that
    poll are shown by one more poll when it is up, not by one each (Home Assistant's debouncer)."""
    r, cooldown = slow_refresh(), COMMAND_POLL_COOLDOWN
    r.started(90)
    r.succeeded(90, {})
    r.commanded(100)
    assert r.next_due(100) == 100
    r.started(100)
    r.succeeded(100.5, {})
    r.commanded(101)
    r.commanded(102)  # shares the poll due for the one before
    assert r.next_due(102) == 100 + cooldown
    r.started(100 + cooldown)
    r.succeeded(100 + cooldown, {})
    assert r.next_due(106) == 100 + cooldown + 60  # the active period again: nothing owed
    r.commanded(100 + 2 * cooldown)  # a cooldown after the last command's poll: at once
    assert r.next_due(100 + 2 * cooldown) == 100 + 2 * cooldown


def test_a_poll_that_starts_after_a_command_shows_it() -> None:
    r = slow_refresh()
    r.started(0)
    r.succeeded(0, {})
    r.commanded(0.5)
    r.started(0.5)
    r.succeeded(0.6, {})
    r.commanded(1)
    assert r.next_due(1) == 0.5 + COMMAND_POLL_COOLDOWN
    r.started(2)  # a force or a set topic brought a poll forward: it follows the command too
    r.succeeded(2, {})
    assert (r.next_due(2), r.forced) == (2 + 60, False)


def test_a_command_polls_once_while_refreshing_is_off() -> None:
    r = slow_refresh()
    r.started(0)
    r.succeeded(0, {})
    r.set_mode(RefreshMode.OFF)
    r.commanded(10)
    assert (r.next_due(10), r.forced) == (10, True)
    r.started(10)
    r.succeeded(10, {})
    assert (r.next_due(11), r.forced) == (None, False)


@pytest.mark.parametrize(
    ("env", "profile", "periods"),
    [
        ({}, "fleet", (5, 5, 5, 600)),  # the simulator: the seed's 5 s everywhere
        ({"SAIC_PWD": "secret"}, "battery-safe", (30, 120, 86_400, 600)),  # a real account: upstream's
        ({"SAIC_PWD": "secret", "GATEWAY_POLLING_PROFILE": "fleet"}, "fleet", (5, 5, 5, 600)),
        (
            {"GATEWAY_POLLING_PROFILE": "battery-safe", "GATEWAY_POLL_INTERVAL_ACTIVE": "10"},
            "battery-safe",
            (10, 120, 86_400, 600),
        ),
        (
            {"SAIC_PWD": "secret", "GATEWAY_POLL_INTERVAL": "60", "GATEWAY_SLEEP_GRACE": "0"},
            "battery-safe",
            (60, 60, 60, 0),
        ),
    ],
)
def test_the_profile_sets_the_periods_and_settings_override_them(
    env: dict[str, str], profile: str, periods: tuple[float, ...]
) -> None:
    settings = GatewaySettings.from_env(env)
    p = settings.refresh_periods()
    assert (settings.profile, (p.active, p.after_shutdown, p.inactive, p.inactive_grace)) == (profile, periods)
    assert settings.refresh_periods() is not p  # each vehicle changes its own copy


def test_a_held_car_is_not_due_until_the_hold_ends_but_a_force_polls_it() -> None:
    r = refresh()
    r.started(0)
    r.succeeded(0, {topics.DRIVETRAIN_CHARGING: True})
    r.hold(until=1000)
    assert (r.phase(10), r.next_due(10)) == (PollingPhase.CALL_BUDGET_SPENT, 1000)
    assert r.phase(1000) is PollingPhase.ACTIVE
    r.set_mode(RefreshMode.FORCE)
    assert r.next_due(10) == 10


def test_daily_calls_count_per_car_and_start_again_each_utc_day() -> None:
    now = [datetime(2026, 11, 30, 23, 59, tzinfo=UTC)]
    calls = DailyCalls(clock=lambda: now[0])
    for _ in range(3):
        calls.add("A")
    calls.add("B")
    assert (calls.today("A"), calls.today("B")) == (3, 1)
    assert seconds_to_next_utc_day(now[0]) == 60
    now[0] += timedelta(minutes=2)
    assert calls.today("A") == 0


def test_a_charging_car_is_polled_per_percent_charged_as_upstream() -> None:
    """11 kW into 64 kWh: 1 % every 210 s, so the car is polled every 210 s, not every 5."""
    r = refresh()  # active 5 s, inactive 600 s
    charging = {topics.DRIVETRAIN_CHARGING: True, topics.DRIVETRAIN_TOTAL_BATTERY_CAPACITY: 64.0}
    r.started(0)
    r.succeeded(0, {**charging, topics.DRIVETRAIN_POWER: -11.0})
    assert (r.charging_period, r.interval(1)) == (210, 210)
    r.succeeded(1, {**charging, topics.DRIVETRAIN_POWER: -11.0, topics.DRIVETRAIN_REMAINING_CHARGING_TIME: 90})
    assert r.interval(2) == 90  # never past the charge's end
    r.succeeded(2, {**charging, topics.DRIVETRAIN_POWER: -1.0, topics.DRIVETRAIN_REMAINING_CHARGING_TIME: 90})
    assert r.interval(3) == 90  # below 1 kW the last period stays
    r.succeeded(3, {**charging, topics.DRIVETRAIN_POWER: -1000.0})
    assert r.interval(4) == 5  # never more often than the active period
    r.succeeded(4, {topics.DRIVETRAIN_CHARGING: False})
    assert (r.charging_period, r.interval(5)) == (0, 30)  # charging over: after shutdown
