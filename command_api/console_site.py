"""The operations console: static files served by the API itself, reading only the API's routes.

The page holds no data and no secret: it asks for an API key or a Supabase access token, keeps it
in the tab's sessionStorage and sends it as a header (WebSockets: as a subprotocol).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from command_api.responses import json_response
from command_api.settings import ApiSettings

CONSOLE_DIR = Path(__file__).resolve().parent / "console"
NO_CACHE = {"Cache-Control": "no-cache"}


def add_console(app: web.Application, settings: ApiSettings) -> None:
    config = {
        "gap_alert_s": settings.telemetry_gap_alert,
        "tile_url": settings.console_tile_url,
        "tile_attribution": settings.console_tile_attribution if settings.console_tile_url else None,
    }

    async def index(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(CONSOLE_DIR / "index.html", headers=NO_CACHE)

    async def console_config(_request: web.Request) -> web.Response:
        return json_response(config, headers=NO_CACHE)

    async def to_console(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/console/")

    app.router.add_get("/", to_console)
    app.router.add_get("/console", to_console)
    app.router.add_get("/console/", index)
    app.router.add_get("/console/config.json", console_config)
    app.router.add_static("/console/static", CONSOLE_DIR, append_version=False)
