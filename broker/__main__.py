"""`python -m broker`: start the configured broker on MQTT_PORT with the generated password file."""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field

from broker import amqtt_broker
from broker.config import BrokerConfigError, load_config
from broker.mosquitto import exec_mosquitto, find_mosquitto
from broker.passwords import write_password_file
from common.logging import setup_logging
from common.settings import EnvSettings, MqttSettings, SettingsError

log = logging.getLogger("broker")

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "mosquitto"


class BrokerSettings(EnvSettings):
    implementation: Literal["auto", "mosquitto", "amqtt"] = Field("auto", alias="BROKER_IMPLEMENTATION")
    config_dir: Path = Field(DEFAULT_CONFIG_DIR, alias="BROKER_CONFIG_DIR")
    runtime_dir: Path | None = Field(None, alias="BROKER_RUNTIME_DIR")
    log_level: str = Field("INFO", alias="LOG_LEVEL")


def main() -> int:
    setup_logging("broker")
    try:
        settings = BrokerSettings.from_env()
        mqtt = MqttSettings.from_env()
        setup_logging("broker", settings.log_level)
        credentials = mqtt.broker_credentials()
        config = load_config(settings.config_dir / "mosquitto.conf").with_port(mqtt.port)
    except (SettingsError, BrokerConfigError, OSError) as exc:
        log.critical("cannot start the broker: %s", exc)
        return 2

    runtime_dir = settings.runtime_dir or Path(tempfile.mkdtemp(prefix="vehicle-broker-"))
    runtime_dir.mkdir(parents=True, exist_ok=True)
    password_file = runtime_dir / "passwd"
    write_password_file(password_file, credentials)
    config = config.with_password_file(password_file)

    mosquitto = find_mosquitto() if settings.implementation in ("auto", "mosquitto") else None
    if settings.implementation == "mosquitto" and mosquitto is None:
        log.critical("BROKER_IMPLEMENTATION=mosquitto but no mosquitto binary is installed (apt-get install mosquitto)")
        return 2
    if mosquitto is not None:
        log.info("starting Mosquitto (%s) on %s:%s", mosquitto, config.bind, config.port)
        sys.stdout.flush()
        exec_mosquitto(mosquitto, config, runtime_dir)
    log.info("starting amqtt on %s:%s (Mosquitto not installed or not chosen)", config.bind, config.port)
    asyncio.run(amqtt_broker.run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
