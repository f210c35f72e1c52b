"""Every error as `{"error": {"code", "message", "details"}}`; no input produces a bare 500."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

from common.mqtt import MqttNotConnected

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Raised by handlers; rendered by the middleware with its status, code and message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def json_object(body: Any, allowed: set[str], code: str, expected: str) -> dict[str, Any]:
    """A request body that must be a JSON object of these fields at most; 400 `code` otherwise."""
    if not isinstance(body, dict):
        raise ApiError(400, code, f"expected a JSON object with {expected}")
    unknown = set(body) - allowed
    if unknown:
        raise ApiError(400, code, f"unexpected fields: {', '.join(sorted(unknown))}")
    return body


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        kept = {name: exc.headers[name] for name in ("Allow",) if name in exc.headers}  # a 405 says what is allowed
        return error_response(exc.status, code, message, {"path": request.path}, kept)
    except MqttNotConnected:
        return error_response(503, "broker_unavailable", "the message broker is not reachable; try again shortly")
    except asyncpg.DataError as exc:  # SQLSTATE 22: a value the database cannot take, so the caller's input
        return error_response(400, "invalid_parameter", f"a value is out of range: {str(exc)[:200]}")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        log.warning("database error on %s %s: %s", request.method, request.path, exc)
        return error_response(503, "database_unavailable", "the database is not reachable; try again shortly")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "unexpected error; it has been logged")
