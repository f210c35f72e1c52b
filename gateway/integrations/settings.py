"""Settings of the integrations upstream has: ABRP, OsmAnd / Traccar and OpenWB charging stations,
under upstream's variable names and formats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator

from common.settings import EnvSettings
from common.values import is_vin


def vin_map(value: Any) -> Any:
    """Upstream's `VIN=value,VIN=value` lists, one entry per car."""
    if not isinstance(value, str):
        return value
    pairs: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in value.split(","))):
        vin, equals, setting = entry.partition("=")
        if not equals or not setting.strip():
            raise ValueError(f"expected VIN=value pairs separated by commas, got {entry!r}")
        if not is_vin(vin.strip()):
            raise ValueError(f"{vin.strip()!r} is not a VIN (17 characters, digits and A-Z without I, O, Q)")
        pairs[vin.strip()] = setting.strip()
    return pairs


class IntegrationSettings(EnvSettings):
    abrp_api_key: SecretStr | None = Field(None, alias="ABRP_API_KEY")
    abrp_user_tokens: dict[str, str] = Field(
        default_factory=dict, alias="ABRP_USER_TOKEN", description="VIN=token,...: the cars ABRP follows"
    )
    abrp_api_base: str = Field(
        "https://api.iternio.com/1/", alias="ABRP_API_BASE", pattern=r"^https?://.*/$", description="for tests"
    )
    osmand_server_uri: str | None = Field(None, alias="OSMAND_SERVER_URI", pattern=r"^https?://")
    osmand_device_ids: dict[str, str] = Field(
        default_factory=dict, alias="OSMAND_DEVICE_ID", description="VIN=device id,... (default: the VIN)"
    )
    charging_stations_file: Path | None = Field(
        None, alias="CHARGING_STATIONS_FILE", description="upstream's charging-stations.json"
    )
    http_timeout: float = Field(10.0, alias="INTEGRATIONS_HTTP_TIMEOUT", gt=0, le=120)

    _vin_maps = field_validator("abrp_user_tokens", "osmand_device_ids", mode="before")(vin_map)
