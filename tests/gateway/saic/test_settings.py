"""Choosing the SAIC source and configuring it, including the upstream gateway's variable names."""

from __future__ import annotations

import pytest

from common.settings import SettingsError
from gateway.saic.settings import SaicSettings
from gateway.settings import GatewaySettings


def test_the_saic_source_is_chosen_when_both_credentials_are_set() -> None:
    assert not GatewaySettings.from_env({"SAIC_USERNAME": "me@example.com"}).uses_saic
    assert GatewaySettings.from_env({"SAIC_USERNAME": "me@example.com", "SAIC_PWD": "pw"}).uses_saic
    forced = GatewaySettings.from_env(
        {"SAIC_USERNAME": "me@example.com", "SAIC_PWD": "pw", "GATEWAY_SOURCE": "simulated"}
    )
    assert not forced.uses_saic


def test_upstream_variable_names_work_too() -> None:
    env = {"SAIC_USER": "me@example.com", "SAIC_PASSWORD": "pw", "SAIC_REST_URI": "https://example.test/api.app/v1/"}
    settings = SaicSettings.from_env(env)
    assert settings.api_configuration().base_uri == "https://example.test/api.app/v1/"
    assert GatewaySettings.from_env(env).account == "me@example.com"
    assert GatewaySettings.from_env(env).uses_saic


def test_region_presets() -> None:
    eu = SaicSettings.from_env({"SAIC_USERNAME": "me@example.com", "SAIC_PWD": "pw"}).api_configuration()
    maxus = SaicSettings.from_env(
        {"SAIC_USERNAME": "me@example.com", "SAIC_PWD": "pw", "SAIC_REGION": "maxus-eu"}
    ).api_configuration()
    assert (eu.base_uri, eu.tenant_id) == ("https://gateway-mg-eu.soimt.com/api.app/v1/", "459771")
    assert (maxus.base_uri, maxus.tenant_id) == ("https://gateway-maxus-eu.soimt.com/api.app/v1/", "590224")


def test_a_phone_login_needs_a_country_code() -> None:
    with pytest.raises(SettingsError, match="SAIC_PHONE_COUNTRY_CODE"):
        SaicSettings.from_env({"SAIC_USERNAME": "0612345678", "SAIC_PWD": "pw"}).api_configuration()
    phone = SaicSettings.from_env({"SAIC_USERNAME": "0612345678", "SAIC_PWD": "pw", "SAIC_PHONE_COUNTRY_CODE": "+31"})
    assert phone.api_configuration().username_is_email is False


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SAIC_REGION": "mars"}, "SAIC_REGION"),
        ({"SAIC_BASE_URI": "ftp://nope"}, "SAIC_BASE_URI"),
        ({"SAIC_RATE_LIMIT": "-1"}, "SAIC_RATE_LIMIT"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        SaicSettings.from_env({"SAIC_USERNAME": "me@example.com", "SAIC_PWD": "pw", **env})
