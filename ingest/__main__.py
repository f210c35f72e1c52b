"""`python -m ingest`: store the fleet's telemetry in PostgreSQL or Supabase."""

from __future__ import annotations

import asyncio
import os

from common.alerts import AlertSettings
from common.lifecycle import run_program
from common.settings import MqttSettings
from ingest.app import Ingest, choose_sink, open_sink
from ingest.settings import IngestSettings


async def main(stop: asyncio.Event) -> None:
    settings = IngestSettings.from_env()  # loads .env into the environment first
    environ = dict(os.environ)
    mqtt_settings = MqttSettings.from_env()
    sink = await open_sink(choose_sink(settings, environ), environ, stop)
    if sink is None:
        return
    try:
        await Ingest(settings, mqtt_settings, sink, AlertSettings.from_env()).run(stop)
    finally:
        await sink.close()


if __name__ == "__main__":
    run_program("ingest", main, os.environ.get("LOG_LEVEL", "INFO"))
