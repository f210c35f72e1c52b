from __future__ import annotations

import pytest

from common.settings import MqttSettings, SettingsError


def test_defaults_and_overrides() -> None:
    settings = MqttSettings.from_env({"MQTT_PORT": "1999", "MQTT_GATEWAY_PASSWORD": "pw"})
    assert settings.host == "127.0.0.1"
    assert settings.port == 1999
    assert settings.password_for("gateway") == "pw"


def test_bad_values_name_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"MQTT_PORT: .*'http'"):
        MqttSettings.from_env({"MQTT_PORT": "http"})
    with pytest.raises(SettingsError, match="MQTT_PORT"):
        MqttSettings.from_env({"MQTT_PORT": "70000"})


def test_missing_password_says_where_it_comes_from() -> None:
    with pytest.raises(SettingsError, match="MQTT_INGEST_PASSWORD is not set"):
        MqttSettings.from_env({}).password_for("ingest")


def test_empty_values_count_as_unset() -> None:
    assert MqttSettings.from_env({"MQTT_PORT": ""}).port == 1883
