"""One SAIC account's session: login and re-login, rate limit, circuit breaker and metrics around every call.

SAIC allows one live token per account, and the official app and the gateway log each other out.
Background polling therefore waits `relogin_delay` before logging in again, while a user's command
logs in at once; a call interrupted by a logout is retried once after the new login.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable

from saic_ismart_client_ng import SaicApi
from saic_ismart_client_ng.exceptions import SaicApiException, SaicApiRetryException, SaicLogoutException

from gateway.call_budget import DailyCalls
from gateway.metrics import GatewayMetrics
from gateway.saic.guards import CircuitBreaker, CircuitOpen, RateLimiter
from gateway.saic.settings import SaicSettings

log = logging.getLogger(__name__)

MAX_LOGIN_BACKOFF = 900.0
"""Failed logins back off up to this: retrying a wrong password every few seconds gets accounts locked."""

_RETURN_CODE = re.compile(r"^return code: (-?\d+)")
SERVICE_UNAVAILABLE = 6
HTTP_SERVER_ERRORS = range(500, 600)


def return_code(exc: SaicApiException) -> int | None:
    """The SAIC or HTTP code an exception carries (the library keeps it only in the message)."""
    match = _RETURN_CODE.match(str(exc))
    return int(match.group(1)) if match else None


def is_api_failure(exc: SaicApiException) -> bool:
    """True when the API itself is unwell (transport error, HTTP 5xx, service unavailable).

    Other errors are answers: the car refused (codes 4, 8), the request was wrong, or the car did not
    wake in time; they say nothing about the API's health and do not trip the circuit breaker.
    """
    if isinstance(exc, SaicApiRetryException):
        return False
    code = return_code(exc)
    return code is None or code in HTTP_SERVER_ERRORS or code == SERVICE_UNAVAILABLE


class SaicSession:
    def __init__(
        self,
        api: SaicApi,
        settings: SaicSettings,
        metrics: GatewayMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.relogin_delay = settings.relogin_delay
        self.metrics = metrics
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst, clock)
        self.daily_calls = DailyCalls()
        self.breaker = CircuitBreaker(
            settings.breaker_threshold, settings.breaker_cooldown, settings.breaker_max_cooldown, clock
        )
        self._clock = clock
        self._login_lock = asyncio.Lock()
        self._next_login_at = 0.0
        self._login_failures = 0
        self._generation = 0  # counts logins, so that one logout is acted on once
        self.login_refused: str | None = None
        """SAIC's reason while it refuses the account's login (a wrong or changed password); None
        once a login succeeds. An API that is down does not set it: that is no answer."""

    async def call[T](
        self,
        operation: str,
        request: Callable[[SaicApi], Awaitable[T]],
        *,
        vin: str | None = None,
        urgent: bool = False,
    ) -> T:
        """Run `request(api)` logged in, counted against `vin`'s daily calls; `urgent` (a user's
        command) skips the re-login delay."""
        generation = await self._ensure_login(urgent)
        try:
            return await self._guarded(operation, request, vin)
        except SaicLogoutException:
            self._logged_out(generation, operation)
        await self._ensure_login(urgent)
        return await self._guarded(operation, request, vin)

    async def _ensure_login(self, urgent: bool) -> int:
        while not self.api.is_logged_in:
            wait = 0.0 if urgent else self._next_login_at - self._clock()
            if wait > 0:
                # Outside the lock, so that a user's command can log in meanwhile.
                await asyncio.sleep(wait)
                continue
            async with self._login_lock:
                if not self.api.is_logged_in:
                    await self._login()
        return self._generation

    async def _login(self) -> None:
        try:
            await self._guarded("login", lambda api: api.login())
        except (SaicApiException, CircuitOpen) as exc:
            if isinstance(exc, SaicApiException) and not is_api_failure(exc):
                self.login_refused = str(exc)
            self._login_failures += 1
            delay = min(self.relogin_delay * 2 ** (self._login_failures - 1), MAX_LOGIN_BACKOFF)
            self._next_login_at = self._clock() + max(delay, 1.0)
            self.metrics.logins.labels("failed").inc()
            log.error("SAIC login failed (%s); next background attempt in %.0fs", exc, max(delay, 1.0))
            raise
        self._login_failures = 0
        self.login_refused = None
        self._generation += 1
        self.metrics.logins.labels("ok").inc()
        self.metrics.logged_in.set(1)
        log.info("logged in to the SAIC API (session %d)", self._generation)

    def _logged_out(self, generation: int, operation: str) -> None:
        self.metrics.logged_in.set(0)
        if generation != self._generation:
            return  # someone logged in again since this call started
        self._next_login_at = self._clock() + self.relogin_delay
        log.warning(
            "logged out by the SAIC API during %s (another app may have logged in); logging in again", operation
        )

    async def _guarded[T](
        self, operation: str, request: Callable[[SaicApi], Awaitable[T]], vin: str | None = None
    ) -> T:
        try:
            self.breaker.before_call()
        except CircuitOpen:
            self.metrics.api_calls.labels(operation, "circuit_open").inc()
            raise
        await self.limiter.acquire()
        if vin is not None:
            self.daily_calls.add(vin)
        started = time.perf_counter()
        outcome = "ok"
        try:
            result = await request(self.api)
        except SaicLogoutException:
            outcome = "logout"
            self.breaker.record_neutral()
            raise
        except SaicApiException as exc:
            if is_api_failure(exc):
                outcome = "api_failure"
                self._record_failure()
            else:
                outcome = "refused"
                self.breaker.record_neutral()
            raise
        except Exception as exc:
            outcome = "api_failure"
            self._record_failure()
            raise SaicApiException(f"{operation} failed unexpectedly: {exc!r}") from exc
        else:
            if self.breaker.is_open or self.breaker.failures:
                log.info("the SAIC API answers again")
            self.breaker.record_success()
            self.metrics.circuit_open.set(0)
            return result
        finally:
            self.metrics.api_calls.labels(operation, outcome).inc()
            self.metrics.api_duration.labels(operation).observe(time.perf_counter() - started)

    def _record_failure(self) -> None:
        was_open = self.breaker.is_open
        self.breaker.record_failure()
        if self.breaker.is_open:
            self.metrics.circuit_open.set(1)
            if not was_open:
                log.error("SAIC API failed %d times in a row: suspending calls", self.breaker.failures)

    async def close(self) -> None:
        await self.api.close()
