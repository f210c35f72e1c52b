"""The SAIC client's HTTP pool (gateway/saic/http.py), with the real library against the test server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from httpx_aiohttp import AiohttpTransport
from saic_ismart_client_ng.exceptions import SaicApiException

from gateway.saic.http import SaicHttpClient, http_client, saic_api
from gateway.saic.settings import SaicSettings
from gateway.simulator import SimulatedFleet
from local_stack.ports import free_port
from tests.saic_server import SaicTestServer

CONCURRENT = 40


@pytest.fixture
async def slow_server() -> AsyncIterator[SaicTestServer]:
    """Every call takes 50 ms, so that CONCURRENT calls are in flight together."""
    server = SaicTestServer(SimulatedFleet(2, seed=1, command_latency=0), latency=0.05)
    await server.start()
    yield server
    await server.stop()


def test_the_library_client_is_replaced_keeping_its_timeout_and_hooks() -> None:
    settings = SaicSettings.from_env({"SAIC_USERNAME": "u@example.com", "SAIC_PWD": "pw", "SAIC_READ_TIMEOUT": "7"})
    client = http_client(saic_api(settings))
    assert isinstance(client._transport, AiohttpTransport)
    assert client.timeout.read == 7
    # The library's own hooks: request listener and encryption, decryption and response listener.
    assert len(client.event_hooks["request"]) == 2
    assert len(client.event_hooks["response"]) == 2


def test_the_library_pool_is_kept_on_request() -> None:
    settings = SaicSettings.from_env({"SAIC_USERNAME": "u@example.com", "SAIC_PWD": "pw", "SAIC_HTTP_POOL": "library"})
    assert isinstance(http_client(saic_api(settings))._transport, httpx.AsyncHTTPTransport)


async def test_connections_are_kept_for_every_call_in_flight(slow_server: SaicTestServer) -> None:
    """httpcore's pool kept 20 idle connections: each round of 40 calls opened 20 new ones (100 in
    four rounds). Replies decode, so the encryption hooks went with the client."""
    api = saic_api(SaicSettings.from_env(slow_server.env()))
    try:
        await api.login()
        vins = [v.vin for v in (await api.vehicle_list()).vinList if v.vin]
        for _ in range(4):
            replies = await asyncio.gather(*(api.get_vehicle_status(vins[n % len(vins)]) for n in range(CONCURRENT)))
            assert all(reply.basicVehicleStatus is not None for reply in replies)
    finally:
        await api.close()
    assert slow_server.signature_failures == 0
    connections = {r.client_port for r in slow_server.requests}
    assert len(connections) <= CONCURRENT + 1, f"{len(connections)} connections for {CONCURRENT} calls in flight"


async def test_an_unreachable_api_is_a_saic_error(slow_server: SaicTestServer) -> None:
    api = saic_api(SaicSettings.from_env(slow_server.env()))
    await slow_server.stop()
    try:
        with pytest.raises(SaicApiException, match="failed unexpectedly"):
            await api.login()
    finally:
        await api.close()


async def test_cookies_are_looked_for_only_in_replies_that_set_one(monkeypatch: pytest.MonkeyPatch) -> None:
    async def plain(_request: web.Request) -> web.Response:
        return web.Response(text="{}")

    async def with_cookie(_request: web.Request) -> web.Response:
        response = web.Response(text="{}")
        response.set_cookie("route", "b")
        return response

    app = web.Application()
    app.router.add_get("/plain", plain)
    app.router.add_get("/cookie", with_cookie)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stand_ins: list[object] = []
    original = httpx.Cookies._CookieCompatRequest

    class Counted(original):  # type: ignore[misc,valid-type]
        def __init__(self, request: httpx.Request) -> None:
            stand_ins.append(request)
            super().__init__(request)

    monkeypatch.setattr(httpx.Cookies, "_CookieCompatRequest", Counted)
    client = SaicHttpClient(transport=AiohttpTransport())
    try:
        await client.send(httpx.Request("GET", f"http://127.0.0.1:{port}/plain"))
        assert stand_ins == []
        assert not client.cookies
        await client.send(httpx.Request("GET", f"http://127.0.0.1:{port}/cookie"))
        assert len(stand_ins) == 1
        assert client.cookies["route"] == "b"
    finally:
        await client.aclose()
        await runner.cleanup()
