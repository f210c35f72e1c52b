"""For now one development API key guards the command routes (`X-API-Key` or `Authorization: Bearer`)."""

from __future__ import annotations

import hmac

from aiohttp import web

from command_api.errors import ApiError


def presented_key(request: web.Request) -> str | None:
    if key := request.headers.get("X-API-Key"):
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_api_key(request: web.Request, expected: str) -> str:
    """The caller's identity for the audit trail; raises 401 without a valid key."""
    key = presented_key(request)
    if key is None:
        raise ApiError(401, "unauthorized", "an API key is required: send it as X-API-Key or Authorization: Bearer")
    if not hmac.compare_digest(key.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "the API key is not valid")
    return "api-key:development"
