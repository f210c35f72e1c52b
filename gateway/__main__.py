"""`python -m gateway`: poll the configured vehicle source and publish it over MQTT."""

from __future__ import annotations

import asyncio
import os

from common.account_secrets import AccountCipher, AccountCipherSettings
from common.alerts import Alerts, AlertSettings
from common.lifecycle import run_program
from common.settings import DatabaseSettings, MqttSettings
from gateway.app import Gateway, build_source
from gateway.hub import GatewayHub
from gateway.integrations.settings import IntegrationSettings
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings


async def main(stop: asyncio.Event) -> None:
    settings = GatewaySettings.from_env()
    mqtt_settings = MqttSettings.from_env()
    metrics = GatewayMetrics()
    alerts = Alerts("gateway", AlertSettings.from_env())
    integrations = IntegrationSettings.from_env()
    if os.environ.get("ACCOUNTS_ENCRYPTION_KEY"):
        # Accounts from the database, leased between replicas (gateway/accounts.py).
        from gateway.accounts import AccountSupervisor

        hub = GatewayHub(settings, mqtt_settings, metrics=metrics, alerts=alerts, integrations=integrations)
        cipher = AccountCipher(AccountCipherSettings.from_env())
        supervisor = AccountSupervisor(hub, settings, mqtt_settings, DatabaseSettings.from_env(), cipher, os.environ)
        await supervisor.run(stop)
        return
    source = build_source(settings, metrics)
    await Gateway(settings, mqtt_settings, source, metrics, alerts, integrations).run(stop)


if __name__ == "__main__":
    run_program("gateway", main, os.environ.get("LOG_LEVEL", "INFO"))
