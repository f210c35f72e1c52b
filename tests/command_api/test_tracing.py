"""A request's Cloud Trace id is set for its log lines, and only for them."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from command_api.tracing import trace_middleware
from common.logging import request_trace
from tests.helpers import serving


async def test_the_trace_header_reaches_the_logs_context() -> None:
    seen: list[str | None] = []

    async def handler(_request: web.Request) -> web.Response:
        seen.append(request_trace.get())
        return web.Response(text="ok")

    app = web.Application(middlewares=[trace_middleware])
    app.router.add_get("/", handler)
    async with serving(app) as base, aiohttp.ClientSession() as http:
        headers = {"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"}
        async with http.get(f"{base}/", headers=headers) as response:
            assert response.status == 200
        async with http.get(f"{base}/", headers={"X-Cloud-Trace-Context": "not a trace"}):
            pass
        async with http.get(f"{base}/"):
            pass
    assert seen == ["105445aa7843bc8bf206b12000100000", None, None]
    assert request_trace.get() is None
