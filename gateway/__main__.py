"""`python -m gateway`: poll the configured vehicle source and publish it over MQTT."""

from __future__ import annotations

import asyncio
import os

from common.alerts import Alerts, AlertSettings
from common.lifecycle import run_program
from common.settings import MqttSettings
from gateway.app import Gateway, build_source
from gateway.integrations.settings import IntegrationSettings
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings


async def main(stop: asyncio.Event) -> None:
    settings = GatewaySettings.from_env()
    mqtt_settings = MqttSettings.from_env()
    metrics = GatewayMetrics()
    source = build_source(settings, metrics)
    alerts = Alerts("gateway", AlertSettings.from_env())
    await Gateway(settings, mqtt_settings, source, metrics, alerts, IntegrationSettings.from_env()).run(stop)


if __name__ == "__main__":
    run_program("gateway", main, os.environ.get("LOG_LEVEL", "INFO"))
