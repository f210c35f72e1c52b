"""The SAIC client's requests sent straight through aiohttp, not through an `httpx.AsyncClient`.

saic-ismart-client-ng builds each request as an `httpx.Request` and sends it through an
`httpx.AsyncClient` of its own, whose event hooks encrypt the request and decrypt the reply. That
client runs on httpcore's pool, which keeps at most 20 idle connections (a fleet polled 50 at a time
reopened about ten a second, a TLS handshake each against the real API) and asks every pooled
socket, through anyio, whether the server closed it (9 % of the gateway's CPU at 100 cars).

`SaicSender` takes the library's place for `send`: it encrypts with the library's own functions,
sends through an `aiohttp.ClientSession` (which keeps every idle connection until it expires), and
gives the library back an `httpx.Response` of the decrypted reply. httpx's client, its hooks on
its case-insensitive headers and its response streaming cost a quarter of the gateway's CPU at
1,000 cars; none of it is needed to send one request (docs/benchmarks.md, "The SAIC client's
requests"). The wire is the same: the library's headers and body; no cookies are sent, as the
library sends none.

The library has no parameter for its HTTP client, so `saic_api` swaps it in. `SAIC_HTTP_POOL=library`
keeps the library's own client: a fallback, should the sender ever misbehave against the real API.
Either way `saic_api` installs the gateway's decoder of the replies (`gateway.saic.decode`), its
event-id retries (`gateway.saic.event_id`) and hashlib's MD5 digest in place of the library's.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import aiohttp
import httpx
from multidict import CIMultiDict
from saic_ismart_client_ng import SaicApi
from saic_ismart_client_ng.model import SaicApiConfiguration
from saic_ismart_client_ng.net import crypto
from saic_ismart_client_ng.net.client import SaicApiClient

from gateway.saic import decode, event_id
from gateway.saic.settings import SaicSettings

# Where saic-ismart-client-ng 0.13 keeps its clients (name-mangled private attributes).
# tests/gateway/saic/test_http.py fails when an upgrade moves them.
_API_CLIENT = "_AbstractSaicApi__api_client"
_HTTP_CLIENT = "_SaicApiClient__client"
_LISTENER = "_SaicApiClient__listener"

CONNECTIONS = 100
"""At most this many connections to the API at once (httpx's default, which the library had)."""
KEEP_IDLE = 5.0
"""An idle connection is closed after this many seconds (httpx's default)."""
_STALE_AFTER_DECRYPTION = ("Content-Encoding", "Content-Length", "Transfer-Encoding")


def saic_api(settings: SaicSettings) -> SaicApi:
    decode.install()  # the library's replies decoded without dacite's cost (see gateway.saic.decode)
    event_id.install()  # event-id calls retried without tenacity's per-call cycles (see gateway.saic.event_id)
    vars(crypto)["md5_hex_digest"] = md5_hex_digest  # what its encryption calls
    configuration = settings.api_configuration()
    api = SaicApi(configuration)
    if settings.http_pool == "library":
        return api
    api_client: SaicApiClient = getattr(api, _API_CLIENT)
    if getattr(api_client, _LISTENER) is not None:
        raise ValueError("SaicSender does not call the library's request listener: use SAIC_HTTP_POOL=library")
    # The library's client is unused yet: it holds no connection to close.
    setattr(api_client, _HTTP_CLIENT, SaicSender(api_client, configuration))
    return api


def md5_hex_digest(content: str, do_padding: bool) -> str:
    """The library's `md5_hex_digest` (hex digits, "00" appended when padding), at an eighth of
    its cost: it builds the hex string a byte at a time. Up to eight digests per request."""
    return hashlib.md5((content + "00" if do_padding else content).encode()).hexdigest()  # noqa: S324 - the API's scheme


class SaicSender:
    """What the library's `SaicApiClient` uses of its `httpx.AsyncClient`: `send` and `aclose`."""

    def __init__(self, api_client: SaicApiClient, configuration: SaicApiConfiguration) -> None:
        self._api_client = api_client  # its user token changes at each login
        self._base_uri = configuration.base_uri
        self._region = configuration.region
        self._tenant_id = configuration.tenant_id
        self.timeout = configuration.read_timeout
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        """Made on the first request, in the running loop; certificates verified as httpx does."""
        connector = aiohttp.TCPConnector(limit=CONNECTIONS, keepalive_timeout=KEEP_IDLE, ssl=httpx.create_ssl_context())
        timeout = aiohttp.ClientTimeout(sock_connect=self.timeout, sock_read=self.timeout, connect=self.timeout)
        return aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar())

    async def send(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        url = str(request.url)
        headers: CIMultiDict[str] = CIMultiDict(request.headers)
        for name in ("Host", "Content-Length"):  # aiohttp writes both for what it sends
            headers.popall(name, None)
        body, _ = crypto.encrypt_request(  # sets the headers in place
            original_request_url=url,
            original_request_headers=headers,
            original_request_content=request.content.decode(),
            request_timestamp=datetime.now(),
            base_uri=self._base_uri,
            region=self._region,
            tenant_id=self._tenant_id,
            user_token=self._api_client.user_token,
        )
        data = body.encode() if isinstance(body, str) else body
        async with self._session.request(
            request.method, url, data=data or None, headers=headers, allow_redirects=False
        ) as reply:
            content = await reply.read()
            status, charset = reply.status, reply.charset or "utf-8"
            reply_headers: CIMultiDict[str] = CIMultiDict(reply.headers)
        if 200 <= status < 300 and (text := content.decode(charset).strip()):
            content, _ = crypto.decrypt_response(  # sets the content type in place
                original_response_content=text,
                original_response_headers=reply_headers,
                original_response_charset=charset,
            )
        for name in _STALE_AFTER_DECRYPTION:
            reply_headers.popall(name, None)
        return httpx.Response(status, headers=list(reply_headers.items()), content=content, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def http_client(api: SaicApi) -> Any:
    """What `api` sends through: a `SaicSender`, or the library's `httpx.AsyncClient` (for tests)."""
    return getattr(getattr(api, _API_CLIENT), _HTTP_CLIENT)
