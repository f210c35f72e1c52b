"""Event-id calls (gateway/saic/event_id.py), with the real library against the SAIC test server."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import pytest
import tenacity
from saic_ismart_client_ng import SaicApi
from saic_ismart_client_ng.api import base
from saic_ismart_client_ng.exceptions import SaicApiRetryException

from gateway.saic import event_id
from gateway.saic.http import saic_api
from gateway.saic.settings import SaicSettings
from tests.saic_server import SaicTestServer


@pytest.fixture
async def api(saic_server: SaicTestServer) -> AsyncIterator[SaicApi]:
    api = saic_api(SaicSettings.from_env(saic_server.env()))
    await api.login()
    yield api
    await api.close()


async def _vins(api: SaicApi) -> list[str]:
    return [v.vin for v in (await api.vehicle_list()).vinList if v.vin]


def test_the_library_calls_what_is_replaced() -> None:
    """The library's public event-id calls go through the private method `install()` replaces."""
    for public in (
        base.AbstractSaicApi.execute_api_call_with_event_id,
        base.AbstractSaicApi.execute_api_call_with_event_id_no_result,
    ):
        assert event_id._EXECUTE_WITH_EVENT_ID in public.__code__.co_names
    assert callable(getattr(base.AbstractSaicApi, event_id._EXECUTE))
    event_id.install()
    assert getattr(base.AbstractSaicApi, event_id._EXECUTE_WITH_EVENT_ID) is event_id.execute_with_event_id


async def test_a_car_that_wakes_is_asked_again_with_its_event_id(saic_server: SaicTestServer, api: SaicApi) -> None:
    saic_server.event_id_rounds = 3
    vin = (await _vins(api))[0]
    reply = await api.get_vehicle_charging_management_data(vin)
    assert reply.chrgMgmtData is not None
    ids = [r.event_id for r in saic_server.requests if r.path.startswith("/vehicle/charging/mgmtData")]
    assert len(ids) == 4
    assert ids[0] == "0"
    assert ids[1] == ids[2] == ids[3] != "0"


async def test_a_car_that_never_wakes_fails_after_the_retry_time(
    saic_server: SaicTestServer, api: SaicApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_id, "RETRY_FOR", 0.3)  # SAIC_SMS_DELIVERY_DELAY is 0.05 s here
    saic_server.event_id_rounds = 1_000
    vin = (await _vins(api))[0]
    with pytest.raises(SaicApiRetryException):
        await api.get_vehicle_charging_management_data(vin)
    calls = [r for r in saic_server.requests if r.path.startswith("/vehicle/charging/mgmtData")]
    assert 3 <= len(calls) <= 8


def test_the_callers_wait_is_asked_as_tenacity_asks_it(api: SaicApi) -> None:
    # What the library passes for a vehicle's status: a second before every attempt.
    status_wait = tenacity.wait_chain(tenacity.wait_fixed(1) + tenacity.wait_none())
    assert [event_id._seconds_to_wait(api, status_wait, attempt) for attempt in (1, 2, 5)] == [1.0, 1.0, 1.0]
    growing = tenacity.wait_exponential(multiplier=1, max=8)
    assert [event_id._seconds_to_wait(api, growing, attempt) for attempt in (1, 2, 3, 5)] == [1, 2, 4, 8]
    assert event_id._seconds_to_wait(api, None, 1) == 0.05  # the configuration's SAIC_SMS_DELIVERY_DELAY


async def test_event_id_calls_leave_no_reference_cycles(api: SaicApi) -> None:
    """The library's tenacity decorator, built per call, left some 60 objects in cycles per call."""
    vins = await _vins(api)
    calls = 20
    gc.collect()
    gc.disable()
    try:
        for n in range(calls):
            await api.get_vehicle_charging_management_data(vins[n % len(vins)])
        garbage = gc.collect()
    finally:
        gc.enable()
    assert garbage < calls, f"{garbage} objects in cycles after {calls} calls"
