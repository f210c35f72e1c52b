"""Why polls start late, told truthfully.

A poll starts late for one of three reasons, and each needs a different fix:
- every poll slot is busy: more polls are due than the API answers in time at this concurrency;
- the car's previous poll was still running: the SAIC API answers slowly for its period;
- calls waited for the account's rate limit (`SAIC_RATE_LIMIT`): the fleet's periods need more
  calls per second than it allows.
One window's account of late starts names the reason that held them back most.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class LatenessWindow:
    started: float
    polls: int = 0
    late: int = 0
    worst_lag: float = 0.0
    worst_slot_wait: float = 0.0
    slowest_poll: float = 0.0
    slowest_vin: str = ""
    slowest_period: float = 0.0
    throttled_at_start: float = 0.0
    """The source's total rate-limit wait when the window opened."""

    def poll_started(self, lag: float, slot_wait: float, late_after: float) -> None:
        self.polls += 1
        self.late += lag > late_after
        self.worst_lag = max(self.worst_lag, lag)
        self.worst_slot_wait = max(self.worst_slot_wait, slot_wait)

    def poll_ended(self, vin: str, duration: float, period: float) -> None:
        if duration - period > self.slowest_poll - self.slowest_period:
            self.slowest_poll, self.slowest_vin, self.slowest_period = duration, vin, period

    def report(self, now: float, *, throttled: float, slots: int, concurrency: int, demand: float) -> str:
        """One line: how late, how many, and the reason that held polls back most.

        `throttled` is the source's total rate-limit wait so far, `demand` the polls per second the
        fleet's current periods ask for."""
        window = now - self.started
        waited_for_rate = throttled - self.throttled_at_start
        head = (
            f"polls started up to {self.worst_lag:.1f}s late in the last {window:.0f}s "
            f"({self.late} of {self.polls} late; the fleet's periods ask for {demand:.1f} polls/s): "
        )
        overrun = self.slowest_poll - self.slowest_period
        if waited_for_rate >= max(self.worst_slot_wait, overrun, 0.0) and waited_for_rate > 0:
            return head + (
                f"calls waited {waited_for_rate:.0f}s in all for the account's rate limit (SAIC_RATE_LIMIT): "
                "raise it if SAIC allows, or lengthen the periods"
            )
        if self.worst_slot_wait >= overrun:
            return head + (
                f"polls waited up to {self.worst_slot_wait:.1f}s for a free slot, all {slots} busy "
                f"(GATEWAY_POLL_CONCURRENCY={concurrency} at most): more polls are due than the API answers in time"
            )
        return head + (
            f"the SAIC API answers slowly: a poll of {self.slowest_vin} took {self.slowest_poll:.1f}s "
            f"against its {self.slowest_period:g}s period"
        )
