"""CORS for the configured origins: preflights answered here, the allow headers on every response."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from command_api.errors import error_response

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-API-Key"
EXPOSED_HEADERS = "Retry-After, Location, Idempotent-Replayed, X-Request-Id"
MAX_AGE = "600"


def cors_middleware(origins: frozenset[str]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin", "").rstrip("/")
        allowed = bool(origin) and (origin in origins or "*" in origins)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not allowed:
                return error_response(
                    403, "origin_not_allowed", f"origin {origin!r} is not allowed (CORS_ALLOWED_ORIGINS)"
                )
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = MAX_AGE
        else:
            response = await handler(request)
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            response.headers["Vary"] = "Origin"
        return response

    return middleware
