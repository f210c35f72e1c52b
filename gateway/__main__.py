"""`python -m gateway`: poll the configured vehicle source and publish it over MQTT."""

from __future__ import annotations

import asyncio
import os

from common.lifecycle import run_program
from common.settings import MqttSettings
from gateway.app import Gateway, build_source
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings


async def main(stop: asyncio.Event) -> None:
    settings = GatewaySettings.from_env()
    mqtt_settings = MqttSettings.from_env()
    metrics = GatewayMetrics()
    await Gateway(settings, mqtt_settings, build_source(settings, metrics), metrics).run(stop)


if __name__ == "__main__":
    run_program("gateway", main, os.environ.get("LOG_LEVEL", "INFO"))
