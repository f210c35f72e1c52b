"""Cloud Run's `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1` attached to every log line of its request."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from common.logging import request_trace


@web.middleware
async def trace_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    trace = request.headers.get("X-Cloud-Trace-Context", "").split("/", 1)[0].strip()
    token = request_trace.set(trace if trace.isalnum() else None)
    try:
        response: web.StreamResponse = await handler(request)
        return response
    finally:
        request_trace.reset(token)
