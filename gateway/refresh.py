"""When to poll each vehicle: polling profiles and phases, refresh modes, error backoff.

A car that drives, charges or runs its climate, or was sent a command in the last
COMMAND_ACTIVITY seconds, is `active` and polled every `active` seconds. For `inactive_grace`
seconds after that it is `afterShutdown` (the seed's sleep phase), polled every `after_shutdown`
seconds, then `inactive`. Failed polls back off exponentially from the active period up to
`error_max` (`error`). The phase is published on `refresh/pollingPhase`.

Each status call can wake the car's telematics unit, and owners report drained 12 V batteries from
frequent polling. Two profiles: `battery-safe` (upstream's 30 s / 120 s / 1 day), the default for
a real SAIC account, and `fleet` (the seed's 5 s everywhere), the default for the simulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from common import topics
from common.values import TelemetryValue

CHARGE_POLLING_MIN_PERCENT = 1.0
"""As upstream: a charging car is polled about once per this much of its battery charged."""

COMMAND_ACTIVITY = 120.0
"""Seconds a car counts as active after a command succeeded: its state is about to change."""

COMMAND_POLL_COOLDOWN = 5.0
"""Seconds between the polls that commands bring forward. A command's car is polled at once,
unless the poll that showed an earlier command's effect started less than this ago: then every
command in between is shown by one poll when the time is up (Home Assistant's request-refresh
debouncer, immediate and then trailing). A burst of commands costs a car a poll per cooldown, not a
poll each: the SAIC calls, and the wake of the car, that each poll costs."""


class PollingProfile(StrEnum):
    BATTERY_SAFE = "battery-safe"
    FLEET = "fleet"


class PollingPhase(StrEnum):
    ACTIVE = "active"
    AFTER_SHUTDOWN = "afterShutdown"
    INACTIVE = "inactive"
    ERROR = "error"
    CALL_BUDGET_SPENT = "callBudgetSpent"
    """The car's daily SAIC calls are spent: no polls until the next UTC day (gateway/call_budget.py)."""
    OFF = "off"


class RefreshMode(StrEnum):
    PERIODIC = "periodic"
    OFF = "off"
    FORCE = "force"
    """Poll once as soon as possible, then return to the previous mode."""


@dataclass(slots=True)
class RefreshPeriods:
    active: float
    after_shutdown: float
    inactive: float
    inactive_grace: float
    error_max: float


PROFILES = {
    PollingProfile.BATTERY_SAFE: RefreshPeriods(
        active=30, after_shutdown=120, inactive=86_400, inactive_grace=600, error_max=900
    ),
    PollingProfile.FLEET: RefreshPeriods(active=5, after_shutdown=5, inactive=5, inactive_grace=600, error_max=900),
}
"""Each profile's periods in seconds; GATEWAY_POLL_INTERVAL_* and GATEWAY_SLEEP_GRACE override them."""

ACTIVITY_CHECKS = {PollingProfile.BATTERY_SAFE: 300.0, PollingProfile.FLEET: 0.0}
"""Seconds between looks at SAIC's stored status of an inactive car, which do not wake it (0: none).
fleet polls every car every 5 s and needs none (GATEWAY_ACTIVITY_CHECK_INTERVAL)."""

CALL_BUDGETS = {PollingProfile.BATTERY_SAFE: 2_500, PollingProfile.FLEET: 0}
"""SAIC calls per car and UTC day (0: none). battery-safe spends about 290 a day on a parked car (mostly
stored-status reads) and 240 an hour on a driving one; fleet spends about 35,000 a day, so it has none
(GATEWAY_DAILY_CALL_BUDGET)."""

PERIOD_NAMES = {
    "active": "active",
    "afterShutdown": "after_shutdown",
    "inActive": "inactive",
    "inActiveGrace": "inactive_grace",
}
"""The upstream `refresh/period/<name>` topics and the field each one sets."""


def is_active(values: dict[str, TelemetryValue]) -> bool:
    return any(
        values.get(key) is True
        for key in (topics.DRIVETRAIN_HV_BATTERY_ACTIVE, topics.DRIVETRAIN_RUNNING, topics.DRIVETRAIN_CHARGING)
    )


def charging_period(values: dict[str, TelemetryValue], periods: RefreshPeriods, previous: float) -> float:
    """Upstream's charging period: the time the current power takes to charge
    CHARGE_POLLING_MIN_PERCENT of the battery, never past the charge's end, within the active and
    inactive periods; 0 when the car does not charge. Below 1 kW the last one stays (upstream:
    falling back to the active period got accounts banned)."""
    if values.get(topics.DRIVETRAIN_CHARGING) is not True:
        return 0.0
    power = values.get(topics.DRIVETRAIN_POWER)
    capacity = values.get(topics.DRIVETRAIN_TOTAL_BATTERY_CAPACITY)
    if not isinstance(power, int | float) or power >= -1 or not isinstance(capacity, int | float) or capacity <= 0:
        return previous
    per_percent = 36.0 * capacity / abs(power)  # seconds for 1 % of `capacity` kWh at `power` kW
    remaining = values.get(topics.DRIVETRAIN_REMAINING_CHARGING_TIME)
    seconds = float(math.ceil(CHARGE_POLLING_MIN_PERCENT * per_percent))
    if isinstance(remaining, int | float) and remaining > 0:
        seconds = min(float(remaining), seconds)
    return float(min(max(round(seconds), periods.active), periods.inactive))


@dataclass(slots=True)
class VehicleRefresh:
    periods: RefreshPeriods
    mode: RefreshMode = RefreshMode.PERIODIC
    mode_before_force: RefreshMode = RefreshMode.PERIODIC
    last_attempt: float | None = None
    failures: int = 0
    active: bool = False
    shutdown_at: float | None = None
    command_at: float | None = None
    held_until: float | None = None
    charging_period: float = 0.0
    """Seconds between polls while the car charges (0: not charging, or not known yet)."""
    command_poll_due: float | None = None
    """When a poll must show what a command did (None: no command waits for one)."""
    command_polled_at: float | None = None
    """When the last poll that showed a command's effect started (for COMMAND_POLL_COOLDOWN)."""
    in_flight: bool = field(default=False)

    def phase(self, now: float) -> PollingPhase:
        if self.mode is RefreshMode.OFF:
            return PollingPhase.OFF
        if self.held_until is not None and now < self.held_until:
            return PollingPhase.CALL_BUDGET_SPENT
        if self.failures:
            return PollingPhase.ERROR
        commanded = self.command_at is not None and now - self.command_at < COMMAND_ACTIVITY
        if self.active or commanded:
            return PollingPhase.ACTIVE
        ended = self._activity_ended()
        if ended is not None and now - ended < self.periods.inactive_grace:
            return PollingPhase.AFTER_SHUTDOWN
        return PollingPhase.INACTIVE

    def _activity_ended(self) -> float | None:
        command_ended = None if self.command_at is None else self.command_at + COMMAND_ACTIVITY
        ends = [t for t in (self.shutdown_at, command_ended) if t is not None]
        return max(ends, default=None)

    def interval(self, now: float) -> float:
        p = self.periods
        match self.phase(now):
            case PollingPhase.ERROR:
                return min(p.active * 2.0 ** (self.failures - 1), max(p.error_max, p.active))
            case PollingPhase.ACTIVE:
                return self.charging_period or p.active
            case PollingPhase.AFTER_SHUTDOWN:
                return p.after_shutdown
            case _:
                return p.inactive

    def commanded(self, now: float) -> None:
        """A command succeeded: poll once to show its effect (even while refreshing is off or the
        car's calls are spent, as a force does), then at the active period for a while."""
        self.command_at = now
        if self.command_poll_due is not None:
            return  # shares the poll an earlier command waits for: no poll has started since
        last = self.command_polled_at
        due = now if last is None or now - last >= COMMAND_POLL_COOLDOWN else last + COMMAND_POLL_COOLDOWN
        self.command_poll_due = due

    @property
    def forced(self) -> bool:
        """A poll is wanted whatever the mode and the call budget: a force, or a command's effect."""
        return self.mode is RefreshMode.FORCE or self.command_poll_due is not None

    def next_due(self, now: float) -> float | None:
        """When the next poll is due (monotonic seconds); None while refreshing is off."""
        if self.mode is RefreshMode.FORCE or (self.last_attempt is None and self.mode is RefreshMode.PERIODIC):
            return now
        periodic = self._periodic_due(now)
        if self.command_poll_due is None:
            return periodic
        return self.command_poll_due if periodic is None else min(periodic, self.command_poll_due)

    def _periodic_due(self, now: float) -> float | None:
        if self.mode is RefreshMode.OFF or self.last_attempt is None:
            return None
        if self.held_until is not None and now < self.held_until:
            return self.held_until
        return self.last_attempt + self.interval(now)

    def hold(self, until: float) -> None:
        """No polls before `until` (a user's `force` still polls at once)."""
        self.held_until = until

    def set_mode(self, mode: RefreshMode) -> None:
        if mode is RefreshMode.FORCE and self.mode is not RefreshMode.FORCE:
            self.mode_before_force = self.mode
        self.mode = mode

    def started(self, now: float) -> None:
        self.last_attempt = now
        self.in_flight = True
        if self.mode is RefreshMode.FORCE:
            self.mode = self.mode_before_force
        if self.command_poll_due is not None:  # whatever brought this poll, it follows the commands
            self.command_poll_due = None
            self.command_polled_at = now

    def succeeded(self, now: float, values: dict[str, TelemetryValue]) -> None:
        self.in_flight = False
        self.failures = 0
        was_active, self.active = self.active, is_active(values)
        if was_active and not self.active:
            self.shutdown_at = now
        self.charging_period = charging_period(values, self.periods, self.charging_period)

    def failed(self, now: float) -> None:
        self.in_flight = False
        self.failures += 1
        self.last_attempt = now  # the backoff counts from the failure, however long the call took
