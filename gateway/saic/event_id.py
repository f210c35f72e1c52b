"""The library's event-id calls, retried by a plain loop instead of tenacity machinery built per call.

Reading a car's status or charging data is an "event-id" call: the API may answer "ask again with
this event id" until the car has replied. saic-ismart-client-ng wraps each such call in a new
`tenacity.retry` decorator (a retrying object, a thread-local, closures) that refers to itself:
some 60 objects in reference cycles per call, freed only by the cyclic collector. At 1,000 cars
the gateway spent 1.6-2.3 s of a 30 s run in collections, 0.5-0.8 s without these
(docs/benchmarks.md).

`install()` replaces that one private method with the same loop without the machinery: the first
attempt with event id "0", on `SaicApiRetryException` the next with the event id it carries, after
the wait the caller gave (a tenacity wait strategy, asked as tenacity asks it) or else the
configuration's `sms_delivery_delay`, for at most 30 s; any other exception, or the last retry
exception after 30 s, goes to the caller as it was raised. tests/gateway/saic/test_event_id.py runs
it against the SAIC test server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from typing import Any

import tenacity
from saic_ismart_client_ng.api import base
from saic_ismart_client_ng.exceptions import SaicApiRetryException

RETRY_FOR = 30.0
"""Seconds after the first attempt with no further attempt (the library's `stop_after_delay(30)`)."""

# Name-mangled private methods of saic-ismart-client-ng 0.13's AbstractSaicApi;
# tests/gateway/saic/test_event_id.py fails when an upgrade moves them.
_EXECUTE = "_AbstractSaicApi__execute_api_call"
_EXECUTE_WITH_EVENT_ID = "_AbstractSaicApi__execute_api_call_with_event_id"
_CONFIGURATION = "_AbstractSaicApi__configuration"


async def execute_with_event_id(
    api: base.AbstractSaicApi,
    method: str,
    path: str,
    *,
    body: Any | None = None,
    out_type: type[Any] | None = None,
    params: Any | None = None,
    headers: MutableMapping[str, str] | None = None,
    delay: tenacity.wait.WaitBaseT | None = None,
) -> Any:
    execute = getattr(api, _EXECUTE)
    started = time.monotonic()
    event_id = "0"
    attempt = 1
    while True:
        actual_headers = headers or {}  # updated in place, as the library does
        actual_headers["event-id"] = event_id
        try:
            return await execute(method, path, body=body, out_type=out_type, params=params, headers=actual_headers)
        except SaicApiRetryException as exc:
            if time.monotonic() - started >= RETRY_FOR:
                raise
            event_id = exc.event_id
        await asyncio.sleep(_seconds_to_wait(api, delay, attempt))
        attempt += 1


def _seconds_to_wait(api: base.AbstractSaicApi, delay: tenacity.wait.WaitBaseT | None, attempt: int) -> float:
    if delay is None:
        return float(getattr(api, _CONFIGURATION).sms_delivery_delay)
    state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]  # what a wait reads
    state.attempt_number = attempt
    return float(delay(state))


def install() -> None:
    setattr(base.AbstractSaicApi, _EXECUTE_WITH_EVENT_ID, execute_with_event_id)
