"""Rate limiter and circuit breaker, on a controlled clock."""

from __future__ import annotations

import asyncio

import pytest
from saic_ismart_client_ng.exceptions import SaicApiException, SaicApiRetryException

from gateway.saic.guards import CircuitBreaker, CircuitOpen, RateLimiter
from gateway.saic.session import is_api_failure, return_code


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_rate_limiter_allows_a_burst_then_waits() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=3, clock=clock)
    for _ in range(3):
        await asyncio.wait_for(limiter.acquire(), 0.1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(limiter.acquire(), 0.1)
    clock.now += 1.0  # one token refilled
    await asyncio.wait_for(limiter.acquire(), 0.1)


async def test_a_zero_rate_means_no_limit() -> None:
    limiter = RateLimiter(rate=0, burst=1)
    for _ in range(100):
        await asyncio.wait_for(limiter.acquire(), 0.1)


def test_the_breaker_opens_after_the_threshold_and_lets_one_trial_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=30, max_cooldown=100, clock=clock)
    for _ in range(3):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.is_open
    with pytest.raises(CircuitOpen, match="next attempt in 30s"):
        breaker.before_call()
    clock.now += 30
    breaker.before_call()  # the trial call
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # only one at a time
    breaker.record_failure()  # the trial failed: twice the cooldown
    clock.now += 59
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.now += 1
    breaker.before_call()
    breaker.record_success()
    assert (breaker.failures, breaker.is_open) == (0, False)
    breaker.before_call()


def test_refusals_do_not_count_against_the_api() -> None:
    breaker = CircuitBreaker(threshold=1, cooldown=30, max_cooldown=100, clock=Clock())
    breaker.record_neutral()
    assert not breaker.is_open


@pytest.mark.parametrize(
    ("exc", "failure"),
    [
        (SaicApiException("API call failed unexpectedly", return_code=500), True),
        (SaicApiException("<html>Bad Gateway</html>", return_code=502), True),
        (SaicApiException("The service is not available", return_code=6), True),
        (SaicApiException("The remote control instruction failed", return_code=4), False),
        (SaicApiException("Incorrect password", return_code=15019), False),
        (SaicApiRetryException("waking", event_id="12", return_code=0), False),
    ],
)
def test_which_errors_mean_the_api_is_unwell(exc: SaicApiException, failure: bool) -> None:
    assert is_api_failure(exc) is failure


def test_return_code_is_read_from_the_message() -> None:
    assert return_code(SaicApiException("x", return_code=8)) == 8
    assert return_code(SaicApiException("no code")) is None
