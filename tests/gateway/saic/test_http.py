"""The SAIC client's HTTP pool (gateway/saic/http.py), with the real library against the test server."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from hypothesis import given
from hypothesis import strategies as st
from saic_ismart_client_ng import SaicApi
from saic_ismart_client_ng.crypto_utils import md5_hex_digest as library_md5_hex_digest
from saic_ismart_client_ng.exceptions import SaicApiClosedException, SaicApiException
from saic_ismart_client_ng.net.client import SaicApiClient
from saic_ismart_client_ng.net.crypto import decrypt_request, encrypt_response

from gateway.saic.http import CONNECTIONS, SaicRequest, SaicSender, api_client, md5_hex_digest, saic_api
from gateway.saic.settings import SaicSettings
from gateway.settings import GatewaySettings
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


def test_the_library_client_is_replaced_keeping_its_timeout() -> None:
    settings = SaicSettings.from_env({"SAIC_USERNAME": "u@example.com", "SAIC_PWD": "pw", "SAIC_READ_TIMEOUT": "7"})
    sender = api_client(saic_api(settings))
    assert isinstance(sender, SaicSender)
    assert sender.timeout == 7


def test_the_api_is_built_as_the_library_builds_it_but_for_its_client() -> None:
    """The library's constructor would make its own API client, and an httpx client in it; the API
    object built without them holds what the library's holds (an upgrade that adds a field fails here)."""
    settings = SaicSettings.from_env({"SAIC_USERNAME": "u@example.com", "SAIC_PWD": "pw"})
    library = SaicApi(settings.api_configuration())
    built = saic_api(settings)
    assert type(built) is SaicApi
    assert vars(built).keys() == vars(library).keys()
    assert vars(built)["_AbstractSaicApi__token_expiration"] is None


async def test_a_closed_api_refuses_calls(slow_server: SaicTestServer) -> None:
    api = saic_api(SaicSettings.from_env(slow_server.env()))
    await api.login()
    await api.close()
    with pytest.raises(SaicApiClosedException):
        await api.vehicle_list()


def test_the_library_pool_is_kept_on_request() -> None:
    settings = SaicSettings.from_env({"SAIC_USERNAME": "u@example.com", "SAIC_PWD": "pw", "SAIC_HTTP_POOL": "library"})
    assert isinstance(api_client(saic_api(settings)), SaicApiClient)


async def test_the_library_pool_sends_through_the_library(slow_server: SaicTestServer) -> None:
    api = saic_api(SaicSettings.from_env(slow_server.env() | {"SAIC_HTTP_POOL": "library"}))
    try:
        await api.login()
        vins = [v.vin for v in (await api.vehicle_list()).vinList if v.vin]
        assert (await api.get_vehicle_status(vins[0])).basicVehicleStatus is not None
    finally:
        await api.close()
    assert slow_server.signature_failures == 0


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


def test_the_default_poll_ceiling_is_the_pool_s_connections() -> None:
    """More polls in flight than connections would only queue for one; fewer left the 1,000-car
    start-up bound by the ceiling once a poll's CPU fell (docs/benchmarks.md)."""
    assert GatewaySettings.from_env({}).poll_concurrency == CONNECTIONS


async def test_an_unreachable_api_is_a_saic_error(slow_server: SaicTestServer) -> None:
    api = saic_api(SaicSettings.from_env(slow_server.env()))
    await slow_server.stop()
    try:
        with pytest.raises(SaicApiException, match="failed unexpectedly"):
            await api.login()
    finally:
        await api.close()


type Serve = Callable[[dict[str, Handler]], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts a bare aiohttp server with handlers by "METHOD name"; returns its SAIC base URI."""
    runners: list[web.AppRunner] = []

    async def start(handlers: dict[str, Handler]) -> str:
        app = web.Application()
        for route, handler in handlers.items():
            method, name = route.split()
            app.router.add_route(method, f"/api.app/v1/{name}", handler)
        runners.append(runner := web.AppRunner(app))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}/api.app/v1/"

    yield start
    for runner in runners:
        await runner.cleanup()


def _sender_for(base_uri: str) -> SaicSender:
    settings = SaicSettings.from_env({"SAIC_USERNAME": "u@example.com", "SAIC_PWD": "pw", "SAIC_BASE_URI": base_uri})
    sender = api_client(saic_api(settings))
    assert isinstance(sender, SaicSender)
    return sender


async def test_a_gzipped_reply_is_decrypted_and_an_error_reply_passed_on(serve: Serve) -> None:
    """The real API may compress its replies (the library asks for gzip): the sender unpacks them
    before decrypting, and hands the library neither their encoding nor their old length."""
    reply = {"code": 0, "data": {"text": "é" * 500}}

    async def status(request: web.Request) -> web.Response:
        content, headers = encrypt_response(
            original_request_url=str(request.url),
            original_response_headers={"Content-Type": "application/json"},
            original_response_content=json.dumps(reply),
            response_timestamp_ms=1_700_000_000_000,
            base_uri=str(request.url).removesuffix("status"),
            tenant_id="459771",
        )
        body = gzip.compress(content if isinstance(content, bytes) else content.encode())
        return web.Response(body=body, headers={**headers, "Content-Encoding": "gzip"})

    async def broken(_request: web.Request) -> web.Response:
        return web.Response(status=502, text="bad gateway")

    base_uri = await serve({"GET status": status, "GET broken": broken})
    sender = _sender_for(base_uri)
    try:
        response = await sender.send(SaicRequest.build("GET", f"{base_uri}status"))
        assert response.json() == reply
        assert response.headers["content-type"] == "application/json"
        assert "content-encoding" not in response.headers
        assert "content-length" not in response.headers
        failed = await sender.send(SaicRequest.build("GET", f"{base_uri}broken"))
        assert (failed.status_code, failed.text) == (502, "bad gateway")
    finally:
        await sender.close()


async def test_requests_carry_the_library_headers_and_no_cookies(serve: Serve) -> None:
    """The library's requests reach the wire as it builds them, encrypted, and a cookie the API sets
    is not sent back (the library's own client sends none either)."""
    seen: list[tuple[dict[str, str], bytes]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.read()))
        response = web.Response(status=404)
        response.set_cookie("route", "b")
        return response

    # By name: aiohttp's cookie jar would keep no cookie from an IP address.
    base_uri = (await serve({"POST login": record})).replace("127.0.0.1", "localhost")
    sender = _sender_for(base_uri)
    try:
        for _ in range(2):
            await sender.send(SaicRequest.build("POST", f"{base_uri}login", form={"user": "u"}))
    finally:
        await sender.close()
    (first, body), (second, _) = seen
    assert "Cookie" not in second
    assert first["Content-Type"] == "application/x-www-form-urlencoded;charset=utf-8"
    assert first["ORIGINAL-CONTENT-TYPE"] == "application/x-www-form-urlencoded"
    assert first["tenant-id"] == "459771"
    assert first["Content-Length"] == str(len(body))
    plain = decrypt_request(
        original_request_url=f"{base_uri}login",
        original_request_headers=first,
        original_request_content=body.decode(),
        base_uri=base_uri,
    )
    assert plain == b"user=u"


@dataclass
class _Body:
    value: object


_PRIMITIVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
_PARAMS = st.dictionaries(st.text(), _PRIMITIVES | st.lists(_PRIMITIVES, max_size=3), max_size=4)


@given(
    url=st.sampled_from(["https://gateway-mg-eu.soimt.com/api.app/v1/", "http://127.0.0.1:8080/api.app/v1/"]),
    # Paths as the library writes them: no dot segments, nothing to escape.
    path=st.from_regex(r"([a-zA-Z0-9_-]{1,8}/?){0,4}(\?[a-z]=[a-z0-9]{1,5})?", fullmatch=True),
    params=_PARAMS | st.none(),
    form=_PARAMS | st.none(),
    json_value=st.none() | st.recursive(_PRIMITIVES, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)),
    content_type=st.sampled_from([None, "application/x-www-form-urlencoded", "text/plain"]),
)
def test_requests_are_built_as_httpx_builds_them(
    url: str,
    path: str,
    params: dict[str, Any] | None,
    form: dict[str, Any] | None,
    json_value: object,
    content_type: str | None,
) -> None:
    """The URL, body and content type the library's httpx.Request would carry, as the library builds
    it (a dataclass body as a dict, the event id in the headers)."""
    body = _Body(json_value) if json_value is not None else None
    headers = {"event-id": "0"} | ({"Content-Type": content_type} if content_type else {})
    expected = httpx.Request(
        "POST", url + path, params=params, headers=headers, data=form, json=asdict(body) if body else None
    )
    built = SaicRequest.build("POST", url + path, params, headers, form, body)
    assert built.url == str(expected.url)
    assert built.content == expected.content
    assert built.headers.get("Content-Type") == expected.headers.get("Content-Type")
    assert built.headers["event-id"] == "0"


@given(st.text(), st.booleans())
def test_the_md5_digest_is_the_libraries(content: str, padding: bool) -> None:
    assert md5_hex_digest(content, padding) == library_md5_hex_digest(content, padding)
