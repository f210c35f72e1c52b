"""JSON responses with the API's encodings (ISO-8601 times, UUIDs as text)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(body: Any) -> str:
    return json.dumps(body, default=_default)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers, dumps=dumps)


def encoded_json_response(body: bytes) -> web.Response:
    """A body already encoded by `dumps` (a cached one), with json_response's headers."""
    return web.Response(body=body, content_type="application/json", charset="utf-8")
