"""ABRP and OsmAnd receive each poll in upstream's request format, at a local receiver (the real
services are on the internet, so a receiver of our own stands in for them and checks the format)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from multidict import MultiDict

from common.settings import MqttSettings, SettingsError
from gateway.integrations import forwarding
from gateway.integrations.forwarding import ABRP_SKIPPED
from gateway.integrations.settings import IntegrationSettings
from tests.gateway.test_gateway import root, running_gateway, vin
from tests.helpers import client, latest_on, serving, wait_until


@dataclass
class Receiver:
    url: str = ""
    requests: list[tuple[str, str, MultiDict[str], dict[str, str]]] = field(default_factory=list)
    failures: int = 0
    """Answer this many requests with HTTP 500 first."""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path, MultiDict(request.query), dict(request.headers)))
        if self.failures:
            self.failures -= 1
            return web.Response(status=500, text="down")
        return web.Response(text=f"ok {request.path}")

    def to(self, path: str) -> list[MultiDict[str]]:
        return [query for method, p, query, _ in self.requests if p == path and method == "POST"]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", found.handle)
    async with serving(app) as url:
        found.url = url
        yield found


def settings(receiver: Receiver) -> IntegrationSettings:
    return IntegrationSettings.from_env(
        {
            "ABRP_API_KEY": "the-api-key",
            "ABRP_USER_TOKEN": f"{vin(1)}=token-one",
            "ABRP_API_BASE": f"{receiver.url}/1/",
            "OSMAND_SERVER_URI": f"{receiver.url}/osmand",
            "OSMAND_DEVICE_ID": f"{vin(1)}=car-one",
        }
    )


async def test_abrp_and_osmand_get_each_poll(mqtt_settings: MqttSettings, receiver: Receiver) -> None:
    async with running_gateway(mqtt_settings, integrations=settings(receiver)) as gateway:
        await wait_until(lambda: len(receiver.to("/osmand")) >= 4, what="OsmAnd requests")
        await wait_until(lambda: bool(receiver.to("/1/tlm/send")), what="an ABRP request")
        fleet_vehicle = gateway.source.vehicle(vin(1))  # type: ignore[attr-defined]
        async with client(mqtt_settings, "api") as api:
            await api.subscribe(f"{root(1)}/_internal/+", qos=1)
            await api.subscribe(f"{root(2)}/_internal/+", qos=1)
            wanted = {f"{root(1)}/_internal/abrp", f"{root(2)}/_internal/abrp", f"{root(1)}/_internal/osmand"}
            answers = await latest_on(api, wanted)

    abrp = receiver.to("/1/tlm/send")
    assert {q["token"] for q in abrp} == {"token-one"}  # only the car with a token
    keys = {headers.get("Authorization") for _, path, _, headers in receiver.requests if path == "/1/tlm/send"}
    assert keys == {"APIKEY the-api-key"}
    telemetry = json.loads(abrp[-1]["tlm"])
    assert isinstance(telemetry["utc"], int)
    assert 0 <= telemetry["soc"] <= 100
    assert abs(telemetry["lat"] - fleet_vehicle.latitude) < 0.01
    assert abs(telemetry["odometer"] - fleet_vehicle.mileage_km) < 1  # km for ABRP
    assert isinstance(telemetry["is_parked"], bool)

    osmand = receiver.to("/osmand")
    assert {q["id"] for q in osmand} == {"car-one", vin(2)}  # the VIN where no device id is given
    one = next(q for q in osmand if q["id"] == "car-one")
    assert abs(float(one["odometer"]) - fleet_vehicle.mileage_km * 1000) < 1000  # metres for OsmAnd
    assert int(one["timestamp"]) > 1_700_000_000
    assert one["is_parked"] in ("true", "false")
    assert {"lat", "lon", "soc"} <= one.keys()

    # What each service answered is retained on the car, as upstream publishes it.
    assert answers[f"{root(1)}/_internal/abrp"] == b"ok /1/tlm/send"
    assert answers[f"{root(2)}/_internal/abrp"] == ABRP_SKIPPED.encode()
    assert answers[f"{root(1)}/_internal/osmand"] == b"ok /osmand"


async def test_a_failing_service_never_stops_the_polls(mqtt_settings: MqttSettings, receiver: Receiver) -> None:
    receiver.failures = 6
    async with running_gateway(mqtt_settings, integrations=settings(receiver)) as gateway:
        await wait_until(lambda: gateway.forwarding.failed >= 6, what="failed requests")
        polls = gateway.polls
        await wait_until(lambda: gateway.polls > polls + 4, what="polls going on")
        await wait_until(lambda: gateway.forwarding.sent > 0, what="requests again once the service is back")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("LSJTEST0000000001", "expected VIN=value pairs"),
        ("NOTAVIN=token", "is not a VIN"),
        (f"{'LSJTEST0000000001'}=", "expected VIN=value pairs"),
    ],
)
def test_a_malformed_per_car_list_is_refused_with_the_reason(value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        IntegrationSettings.from_env({"ABRP_USER_TOKEN": value})


def test_upstreams_per_car_lists_are_read() -> None:
    parsed = IntegrationSettings.from_env({"OSMAND_DEVICE_ID": "LSJTEST0000000001=a, LSJTEST0000000002=b"})
    assert parsed.osmand_device_ids == {"LSJTEST0000000001": "a", "LSJTEST0000000002": "b"}


async def test_a_car_without_an_abrp_token_is_not_converted_for_abrp(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    # Every poll passes here (every command's poll too): the conversion is work for nothing.
    def unexpected(_values: object) -> None:
        raise AssertionError("converted for ABRP without a token")

    monkeypatch.setattr(forwarding, "abrp_telemetry", unexpected)
    forwarder = forwarding.TelemetryForwarding(settings(receiver))
    try:
        answers = await forwarder.after_poll(vin(2), {"drivetrain/soc": 80.0})
    finally:
        await forwarder.close()
    assert answers[forwarding.INTERNAL_ABRP] == ABRP_SKIPPED
