"""The SAIC client's requests built and sent by the gateway, straight through aiohttp.

saic-ismart-client-ng builds each request as an `httpx.Request` and sends it through an
`httpx.AsyncClient` of its own, whose event hooks encrypt the request and decrypt the reply. That
client runs on httpcore's pool, which keeps at most 20 idle connections (a fleet polled 50 at a time
reopened about ten a second, a TLS handshake each against the real API) and asks every pooled
socket, through anyio, whether the server closed it (9 % of the gateway's CPU at 100 cars).

Here the library's one private method that builds, sends and decodes a call (`execute_api_call`)
builds a plain `SaicRequest` instead, with httpx's own encodings of the query, the form and the
JSON; `SaicSender` encrypts it with the library's functions, sends it through an
`aiohttp.ClientSession` (which keeps every idle connection until it expires) and answers with a
plain `SaicReply` of the decrypted reply, which the library's decoding reads as it reads an
`httpx.Response`. httpx's URL parsing, its client, its hooks on case-insensitive headers and its
responses cost a third of the gateway's CPU at 1,000 cars, and none of it is needed to send one
request (docs/benchmarks.md, "The SAIC client's requests"). The wire is the same: the library's
headers and body; no cookies are sent, as the library sends none.

The library has no parameter for its HTTP client, so `saic_api` builds the library's API object with
a `SaicSender` in place of its API client. `SAIC_HTTP_POOL=library` keeps the library's own client
and its own method: a fallback, should the sender ever misbehave against the real API. Either way
`saic_api` installs the gateway's decoder of the replies (`gateway.saic.decode`), its event-id
retries (`gateway.saic.event_id`) and hashlib's MD5 digest in place of the library's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx
from multidict import CIMultiDict
from saic_ismart_client_ng import SaicApi
from saic_ismart_client_ng.api import base
from saic_ismart_client_ng.exceptions import SaicApiClosedException, SaicApiException
from saic_ismart_client_ng.model import SaicApiConfiguration
from saic_ismart_client_ng.net import crypto

from gateway.saic import decode, event_id
from gateway.saic.settings import SaicSettings

# What saic-ismart-client-ng 0.13's AbstractSaicApi holds and calls (name-mangled private
# attributes); tests/gateway/saic/test_http.py fails when an upgrade changes them.
_API_CLIENT = "_AbstractSaicApi__api_client"
_CONFIGURATION = "_AbstractSaicApi__configuration"
_TOKEN_EXPIRATION = "_AbstractSaicApi__token_expiration"  # noqa: S105 - a name, no secret
_EXECUTE = "_AbstractSaicApi__execute_api_call"
_DESERIALIZE = "_AbstractSaicApi__deserialize"

CONNECTIONS = 100
"""At most this many connections to the API at once (httpx's default, which the library had)."""
KEEP_IDLE = 5.0
"""An idle connection is closed after this many seconds (httpx's default)."""
_STALE_AFTER_DECRYPTION = ("Content-Encoding", "Content-Length", "Transfer-Encoding")
_library_execute = getattr(base.AbstractSaicApi, _EXECUTE)


def saic_api(settings: SaicSettings) -> SaicApi:
    decode.install()  # the library's replies decoded without dacite's cost (see gateway.saic.decode)
    event_id.install()  # event-id calls retried without tenacity's per-call cycles (see gateway.saic.event_id)
    vars(crypto)["md5_hex_digest"] = md5_hex_digest  # what its encryption calls
    setattr(base.AbstractSaicApi, _EXECUTE, execute_api_call)
    configuration = settings.api_configuration()
    if settings.http_pool == "library":
        return SaicApi(configuration)
    # What the library's constructor sets, with the sender as its API client: the library's own
    # client would make an httpx.AsyncClient this never uses, which loads httpcore, anyio and trio
    # and the CA bundle (9 MiB, 0.2 s at each start).
    api = SaicApi.__new__(SaicApi)
    vars(api).update({_CONFIGURATION: configuration, _API_CLIENT: SaicSender(configuration), _TOKEN_EXPIRATION: None})
    return api


def md5_hex_digest(content: str, do_padding: bool) -> str:
    """The library's `md5_hex_digest` (hex digits, "00" appended when padding), at an eighth of
    its cost: it builds the hex string a byte at a time. Up to eight digests per request."""
    return hashlib.md5((content + "00" if do_padding else content).encode()).hexdigest()  # noqa: S324 - the API's scheme


async def execute_api_call(
    api: base.AbstractSaicApi,
    method: str,
    path: str,
    *,
    body: Any | None = None,
    form_body: Any | None = None,
    out_type: type[Any] | None = None,
    params: Any | None = None,
    headers: Any | None = None,
    allow_null_body: bool = False,
) -> Any:
    """The library's `__execute_api_call` on a `SaicSender`: the same request, its errors wrapped
    the same way; on the library's own client, the library's method."""
    sender = getattr(api, _API_CLIENT)
    if not isinstance(sender, SaicSender):
        return await _library_execute(
            api,
            method,
            path,
            body=body,
            form_body=form_body,
            out_type=out_type,
            params=params,
            headers=headers,
            allow_null_body=allow_null_body,
        )
    try:
        base_uri = getattr(api, _CONFIGURATION).base_uri
        request = SaicRequest.build(method, f"{base_uri}{path.removeprefix('/')}", params, headers, form_body, body)
        reply = await sender.send(request)
        return await getattr(api, _DESERIALIZE)(request, reply, out_type, allow_null_body)
    except SaicApiException:
        raise
    except Exception as exc:
        raise SaicApiException(f"API call {method} {path} failed unexpectedly", return_code=500) from exc


@dataclass(slots=True)
class SaicRequest:
    """A request as `httpx.Request` would carry it, without parsing its URL: the library's URLs
    need no normalising (no dot segments, nothing to escape outside the query)."""

    method: str
    url: str
    headers: CIMultiDict[str]
    content: bytes = b""

    @classmethod
    def build(
        cls,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, Any] | None = None,
        body: Any | None = None,
    ) -> SaicRequest:
        """httpx's encodings: params (even none) replace the URL's query; a form is url-encoded (True as "true",
        None as ""), a JSON body compact and UTF-8; a body sets its content type unless one is given."""
        if params is not None:
            url = url.partition("?")[0] + (f"?{httpx.QueryParams(params)}" if params else "")
        request = cls(method, url, CIMultiDict(headers or {}))
        if form:
            pairs = [(key, _form_value(item)) for key, value in form.items() for item in _as_list(value)]
            request.content = urlencode(pairs, doseq=True).encode()
            request.headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif body:
            json_body = asdict(body)
            request.content = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            request.headers.setdefault("Content-Type", "application/json")
        return request


def _as_list(value: Any) -> list[Any] | tuple[Any, ...]:
    return value if isinstance(value, list | tuple) else [value]


def _form_value(value: Any) -> str:
    return "true" if value is True else "false" if value is False else "" if value is None else str(value)


@dataclass(slots=True)
class SaicReply:
    """What the library's decoding reads of an `httpx.Response`."""

    status_code: int
    headers: CIMultiDict[str]
    content: bytes
    charset: str = "utf-8"
    _text: str | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        """Read on every reply (for a debug log line), so decoded once."""
        if self._text is None:
            self._text = self.content.decode(self.charset, errors="replace")
        return self._text

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400

    def json(self) -> Any:
        return json.loads(self.content)


class SaicSender:
    """What the library uses of its API client (`SaicApiClient`): `send`, `close`, the user token."""

    def __init__(self, configuration: SaicApiConfiguration) -> None:
        self.user_token = ""
        """Set by the library at each login, emptied at each logout."""
        self._closed = False
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

    async def send(self, request: SaicRequest) -> SaicReply:
        if self._closed:
            raise SaicApiClosedException("The API client has been closed and cannot be reused")
        if self._session is None:
            self._session = self._open()
        headers = request.headers.copy()  # the library reads the request's own event id afterwards
        body, _ = crypto.encrypt_request(  # sets the headers in place
            original_request_url=request.url,
            original_request_headers=headers,
            original_request_content=request.content.decode(),
            request_timestamp=datetime.now(),
            base_uri=self._base_uri,
            region=self._region,
            tenant_id=self._tenant_id,
            user_token=self.user_token,
        )
        data = body.encode() if isinstance(body, str) else body
        async with self._session.request(
            request.method, request.url, data=data or None, headers=headers, allow_redirects=False
        ) as response:
            status, charset = response.status, response.charset or "utf-8"
            reply_headers: CIMultiDict[str] = CIMultiDict(response.headers)
            content = await response.read()
        if 200 <= status < 300 and (text := content.decode(charset).strip()):
            content, _ = crypto.decrypt_response(  # sets the content type in place
                original_response_content=text,
                original_response_headers=reply_headers,
                original_response_charset=charset,
            )
        for name in _STALE_AFTER_DECRYPTION:
            reply_headers.popall(name, None)
        return SaicReply(status, reply_headers, content, charset)

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()


def api_client(api: SaicApi) -> Any:
    """What `api` sends through: a `SaicSender`, or the library's `SaicApiClient` (for tests)."""
    return getattr(api, _API_CLIENT)
