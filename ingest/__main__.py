"""`python -m ingest`: store the fleet's telemetry in PostgreSQL."""

from __future__ import annotations

import asyncio
import os

from common.alerts import AlertSettings
from common.lifecycle import run_program
from common.settings import DatabaseSettings, MqttSettings
from ingest.app import Ingest, connect_database
from ingest.settings import IngestSettings


async def main(stop: asyncio.Event) -> None:
    settings = IngestSettings.from_env()
    mqtt_settings = MqttSettings.from_env()
    pool = await connect_database(DatabaseSettings.from_env(), stop)
    if pool is None:
        return
    try:
        await Ingest(settings, mqtt_settings, pool, AlertSettings.from_env()).run(stop)
    finally:
        await pool.close()


if __name__ == "__main__":
    run_program("ingest", main, os.environ.get("LOG_LEVEL", "INFO"))
