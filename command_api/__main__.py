"""`python -m command_api`: serve the HTTP API on $PORT."""

from __future__ import annotations

import asyncio
import logging
import os

from aiohttp import web

from command_api.app import create_app
from command_api.settings import ApiSettings
from common.lifecycle import run_program
from common.settings import DatabaseSettings, MqttSettings

log = logging.getLogger("command_api")

SHUTDOWN_TIMEOUT = 3.0  # fits Cloud Run's ~10 s between SIGTERM and SIGKILL


async def main(stop: asyncio.Event) -> None:
    settings = ApiSettings.from_env()
    app = create_app(settings, MqttSettings.from_env(), DatabaseSettings.from_env())
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info("command API listening on http://%s:%s", settings.host, settings.port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    run_program("command_api", main, os.environ.get("LOG_LEVEL", "INFO"))
