"""SAIC calls per vehicle and UTC day, against a daily budget.

SAIC refuses an account's requests for the rest of the day once it has made too many (return code
4, upstream issue #250) and publishes no figure. The gateway counts every call it makes for a car,
warns at WARN_AT of the budget, and stops polling the car (commands still go through) once the
budget is spent, until the next UTC day.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

WARN_AT = 0.8


class DailyCalls:
    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._day: date = clock().date()
        self._counts: Counter[str] = Counter()

    def _roll(self) -> None:
        today = self._clock().date()
        if today != self._day:
            self._day, self._counts = today, Counter()

    def add(self, vin: str) -> None:
        self._roll()
        self._counts[vin] += 1

    def today(self, vin: str) -> int:
        self._roll()
        return self._counts[vin]


def seconds_to_next_utc_day(now: datetime) -> float:
    return (datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC) - now).total_seconds()
