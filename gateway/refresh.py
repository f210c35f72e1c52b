"""When to poll each vehicle: refresh modes, the seed's active / sleep / inactive periods, error backoff.

A car that drives, charges or runs its climate is active and polled every `active` seconds. For
`inactive_grace` seconds after that it is in the seed's sleep phase (upstream: `afterShutdown`),
then inactive. Failed polls back off exponentially from the active period up to `error_max`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from common import topics
from common.values import TelemetryValue


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


@dataclass(slots=True)
class VehicleRefresh:
    periods: RefreshPeriods
    mode: RefreshMode = RefreshMode.PERIODIC
    mode_before_force: RefreshMode = RefreshMode.PERIODIC
    last_attempt: float | None = None
    failures: int = 0
    active: bool = False
    shutdown_at: float | None = None
    in_flight: bool = field(default=False)

    def interval(self, now: float) -> float:
        p = self.periods
        if self.failures:
            return min(p.active * 2.0 ** (self.failures - 1), max(p.error_max, p.active))
        if self.active:
            return p.active
        if self.shutdown_at is not None and now - self.shutdown_at < p.inactive_grace:
            return p.after_shutdown
        return p.inactive

    def next_due(self, now: float) -> float | None:
        """When the next poll is due (monotonic seconds); None while refreshing is off."""
        if self.mode is RefreshMode.FORCE or (self.last_attempt is None and self.mode is RefreshMode.PERIODIC):
            return now
        if self.mode is RefreshMode.OFF or self.last_attempt is None:
            return None
        return self.last_attempt + self.interval(now)

    def set_mode(self, mode: RefreshMode) -> None:
        if mode is RefreshMode.FORCE and self.mode is not RefreshMode.FORCE:
            self.mode_before_force = self.mode
        self.mode = mode

    def started(self, now: float) -> None:
        self.last_attempt = now
        self.in_flight = True
        if self.mode is RefreshMode.FORCE:
            self.mode = self.mode_before_force

    def succeeded(self, now: float, values: dict[str, TelemetryValue]) -> None:
        self.in_flight = False
        self.failures = 0
        was_active, self.active = self.active, is_active(values)
        if was_active and not self.active:
            self.shutdown_at = now

    def failed(self, now: float) -> None:
        self.in_flight = False
        self.failures += 1
        self.last_attempt = now  # the backoff counts from the failure, however long the call took
