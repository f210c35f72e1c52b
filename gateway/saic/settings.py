"""How the gateway reaches the SAIC API: account, region preset, timeouts and protective limits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from saic_ismart_client_ng.model import SaicApiConfiguration

from common.settings import EnvSettings, SettingsError

type Region = Literal["eu", "au", "tr", "maxus-eu"]

_PRESETS = {
    "eu": SaicApiConfiguration.mg_eu,
    "au": SaicApiConfiguration.mg_au,
    "tr": SaicApiConfiguration.mg_tr,
    "maxus-eu": SaicApiConfiguration.maxus_eu,
}


ACCOUNT_VARIABLES = frozenset(
    {
        "SAIC_USERNAME",
        "SAIC_USER",
        "SAIC_PWD",
        "SAIC_PASSWORD",
        "SAIC_REGION",
        "SAIC_BASE_URI",
        "SAIC_REST_URI",
        "SAIC_TENANT_ID",
        "SAIC_PHONE_COUNTRY_CODE",
    }
)
"""The environment's own account; an account from the table takes only the other SAIC_* settings."""


class SaicSettings(EnvSettings):
    # The upstream gateway's names (SAIC_USER, SAIC_PASSWORD, SAIC_REST_URI) work too: a drop-in.
    username: str = Field(validation_alias=AliasChoices("SAIC_USERNAME", "SAIC_USER"), min_length=1)
    password: SecretStr = Field(validation_alias=AliasChoices("SAIC_PWD", "SAIC_PASSWORD"), min_length=1)
    region: Region = Field("eu", alias="SAIC_REGION", description="the app the account belongs to")
    base_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("SAIC_BASE_URI", "SAIC_REST_URI"),
        pattern=r"^https?://.+/$",
        description="overrides the region's API address",
    )
    tenant_id: str | None = Field(None, alias="SAIC_TENANT_ID", pattern=r"^\d+$")
    phone_country_code: str | None = Field(
        None, alias="SAIC_PHONE_COUNTRY_CODE", pattern=r"^\+?\d{1,4}$", description="for a phone-number login"
    )
    relogin_delay: float = Field(
        5.0, alias="SAIC_RELOGIN_DELAY", ge=0, description="wait before background polling logs in again"
    )
    read_timeout: float = Field(10.0, alias="SAIC_READ_TIMEOUT", gt=0)
    sms_delivery_delay: float = Field(
        3.0, alias="SAIC_SMS_DELIVERY_DELAY", gt=0, description="pause between event-id retries while a car wakes"
    )
    rate_limit: float = Field(5.0, alias="SAIC_RATE_LIMIT", ge=0, description="API calls per second; 0 = no limit")
    rate_burst: int = Field(10, alias="SAIC_RATE_BURST", ge=1)
    breaker_threshold: int = Field(5, alias="SAIC_BREAKER_THRESHOLD", ge=1)
    breaker_cooldown: float = Field(30.0, alias="SAIC_BREAKER_COOLDOWN", gt=0)
    breaker_max_cooldown: float = Field(900.0, alias="SAIC_BREAKER_MAX_COOLDOWN", gt=0)
    max_status_drift: float = Field(
        900.0, alias="SAIC_MAX_STATUS_DRIFT", gt=0, description="reject a status whose time is further off than this"
    )
    schedule_refresh: float = Field(
        900.0,
        alias="SAIC_SCHEDULE_REFRESH",
        ge=0,
        description="read each car's battery-heating schedule at most this often (s); 0 = on every poll",
    )
    http_pool: Literal["aiohttp", "library"] = Field(
        "aiohttp", alias="SAIC_HTTP_POOL", description="the HTTP connection pool: aiohttp's, or the SAIC client's own"
    )

    @classmethod
    def for_account(
        cls, environ: Mapping[str, str], username: str, password: str, region: str, base_uri: str | None
    ) -> SaicSettings:
        """An account from the `accounts` table, with the environment's limits and timeouts."""
        account = {"SAIC_USERNAME": username, "SAIC_PWD": password, "SAIC_REGION": region, "SAIC_BASE_URI": base_uri}
        shared = {k: v for k, v in environ.items() if k.startswith("SAIC_") and k not in ACCOUNT_VARIABLES}
        return cls.from_env({**shared, **{k: v for k, v in account.items() if v}})

    def api_configuration(self) -> SaicApiConfiguration:
        is_email = "@" in self.username
        if not is_email and self.phone_country_code is None:
            raise SettingsError(
                "SAIC_USERNAME is not an e-mail address, so SAIC_PHONE_COUNTRY_CODE must be set for a phone login"
            )
        overrides: dict[str, object] = {
            "username_is_email": is_email,
            "phone_country_code": self.phone_country_code,
            "read_timeout": self.read_timeout,
            "sms_delivery_delay": self.sms_delivery_delay,
        }
        if self.base_uri:
            overrides["base_uri"] = self.base_uri
        if self.tenant_id:
            overrides["tenant_id"] = self.tenant_id
        return _PRESETS[self.region](self.username, self.password.get_secret_value(), **overrides)
