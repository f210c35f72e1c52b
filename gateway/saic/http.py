"""The SAIC client on aiohttp's connection pool instead of httpcore's.

saic-ismart-client-ng sends through an `httpx.AsyncClient` of its own, on httpcore's pool. That pool
keeps at most 20 idle connections, so a fleet polled 50 at a time closes and reopens about ten
connections a second (a TLS handshake each against the real API). And on every request and every
response it asks each pooled connection's socket, through anyio, whether the server closed it: 9 %
of the gateway's CPU at 100 cars. aiohttp keeps every idle connection until it expires and
finds one by its host in a dictionary. The bench (docs/benchmarks.md, "The SAIC client's HTTP
pool") measures the two back to back.

The library has no parameter for its HTTP client, so `saic_api` swaps it for one with the same
timeout and event hooks (the hooks encrypt requests and decrypt replies), on
`httpx_aiohttp.AiohttpTransport`. httpx stays the interface the library sees. `SAIC_HTTP_POOL=library`
keeps the library's own client: a fallback, should aiohttp ever misbehave against the real API.
The swapped-in client also skips httpx's search for cookies in replies that set none
(`SaicHttpClient`), and `saic_api` installs the gateway's decoder of the replies
(`gateway.saic.decode`) and its event-id retries (`gateway.saic.event_id`) whichever the pool.
"""

from __future__ import annotations

from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport
from saic_ismart_client_ng import SaicApi
from saic_ismart_client_ng.net.client import SaicApiClient

from gateway.saic import decode, event_id
from gateway.saic.settings import SaicSettings

# Where saic-ismart-client-ng 0.13 keeps its clients (name-mangled private attributes).
# tests/gateway/saic/test_http.py fails when an upgrade moves them.
_API_CLIENT = "_AbstractSaicApi__api_client"
_HTTP_CLIENT = "_SaicApiClient__client"


def saic_api(settings: SaicSettings) -> SaicApi:
    decode.install()  # the library's replies decoded without dacite's cost (see gateway.saic.decode)
    event_id.install()  # event-id calls retried without tenacity's per-call cycles (see gateway.saic.event_id)
    api = SaicApi(settings.api_configuration())
    if settings.http_pool == "library":
        return api
    api_client: SaicApiClient = getattr(api, _API_CLIENT)
    library_client: httpx.AsyncClient = getattr(api_client, _HTTP_CLIENT)
    # Unused yet: it holds no connection to close.
    setattr(
        api_client,
        _HTTP_CLIENT,
        SaicHttpClient(
            transport=AiohttpTransport(),
            timeout=library_client.timeout,
            event_hooks=library_client.event_hooks,
        ),
    )
    return api


class SaicHttpClient(httpx.AsyncClient):
    """httpx looks for cookies in every reply by building urllib stand-ins of the reply and its
    request: 6 % of the gateway's CPU at 1,000 cars. These replies set none, so the header is
    checked first. (The library sends requests it builds itself, which carry no cookies from the
    jar; it is kept as httpx keeps it all the same.)"""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cookies = _CookiesWhenSet(self._cookies)


class _CookiesWhenSet(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers or "set-cookie2" in response.headers:
            super().extract_cookies(response)


def http_client(api: SaicApi) -> httpx.AsyncClient:
    """The client `api` sends through (for tests)."""
    client: httpx.AsyncClient = getattr(getattr(api, _API_CLIENT), _HTTP_CLIENT)
    return client
