"""ABRP live telemetry and OsmAnd / Traccar positions, sent after each poll as upstream sends them.

The requests are built from the poll's topic values, so they work for any vehicle source:
- ABRP: `POST <base>tlm/send?token=<user token>&tlm=<JSON>` with `Authorization: APIKEY <key>`
  (upstream's integrations/abrp/api.py);
- OsmAnd: `POST <server>?id=<device>&timestamp=...&lat=...` (upstream's integrations/osmand/api.py).

Each answer (or the reason nothing was sent) is retained on the car's `_internal/abrp` and
`_internal/osmand`, as upstream publishes it. A failed request is logged and never fails the poll.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from common import topics
from common.values import TelemetryValue
from gateway.integrations.settings import IntegrationSettings

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

ABRP_SKIPPED = "ABRP request skipped because of missing configuration"
INTERNAL_ABRP = "_internal/abrp"
INTERNAL_OSMAND = "_internal/osmand"


def _number(values: Mapping[str, TelemetryValue], key: str) -> float | None:
    value = values.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def reading_time(values: Mapping[str, TelemetryValue]) -> int:
    stamp = values.get(topics.REFRESH_LAST_VEHICLE_STATE)
    return int((stamp if isinstance(stamp, datetime) else datetime.now(UTC)).timestamp())


def _common(values: Mapping[str, TelemetryValue]) -> dict[str, Any]:
    """The fields both services take, under ABRP's names; only readings the poll has."""
    running = values.get(topics.DRIVETRAIN_RUNNING)
    data: dict[str, Any] = {}
    if isinstance(running, bool):
        data["is_parked"] = not running
        if not running:
            data["speed"] = 0.0  # upstream: a parked car stands still, whatever GPS says
    fields = {
        "soc": topics.DRIVETRAIN_SOC,
        "power": topics.DRIVETRAIN_POWER,
        "voltage": topics.DRIVETRAIN_VOLTAGE,
        "current": topics.DRIVETRAIN_CURRENT,
        "ext_temp": topics.CLIMATE_EXTERIOR_TEMPERATURE,
        "odometer": topics.DRIVETRAIN_MILEAGE,
        "speed": topics.LOCATION_SPEED,
        "heading": topics.LOCATION_HEADING,
        "elevation": topics.LOCATION_ELEVATION,
        "lat": topics.LOCATION_LATITUDE,
        "lon": topics.LOCATION_LONGITUDE,
    }
    for name, key in fields.items():
        if (number := _number(values, key)) is not None:
            data[name] = number
    charging = values.get(topics.DRIVETRAIN_CHARGING)
    if isinstance(charging, bool):
        data["is_charging"] = charging
    if (electric_range := _number(values, topics.DRIVETRAIN_RANGE)) and electric_range > 0:
        data["est_battery_range"] = electric_range
    return data


def abrp_telemetry(values: Mapping[str, TelemetryValue]) -> dict[str, Any] | None:
    """ABRP's `tlm` object; None without a state of charge (upstream sends only with charging data)."""
    if _number(values, topics.DRIVETRAIN_SOC) is None:
        return None
    return {"utc": reading_time(values)} | _common(values)


def osmand_parameters(device_id: str, values: Mapping[str, TelemetryValue]) -> dict[str, str]:
    """OsmAnd's query: the odometer in metres and the elevation as `altitude`, as upstream sends them."""
    data: dict[str, Any] = {"id": device_id, "timestamp": reading_time(values)} | _common(values)
    if "odometer" in data:
        data["odometer"] = data["odometer"] * 1000
    if "elevation" in data:
        data["altitude"] = data.pop("elevation")
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in data.items()}


class TelemetryForwarding:
    def __init__(self, settings: IntegrationSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0
        self.failed = 0

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp  # here: a gateway without integrations never loads the HTTP client

            timeout = aiohttp.ClientTimeout(total=self.settings.http_timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def after_poll(self, vin: str, values: Mapping[str, TelemetryValue]) -> dict[str, TelemetryValue]:
        """Send the poll to the services configured for the car; the `_internal/*` answers to retain."""
        answers: dict[str, TelemetryValue] = {}
        abrp = await self._abrp(vin, values)
        answers[INTERNAL_ABRP] = abrp if abrp is not None else ABRP_SKIPPED
        if (server := self.settings.osmand_server_uri) is not None:
            osmand = await self._osmand(server, vin, values)
            if osmand is not None:
                answers[INTERNAL_OSMAND] = osmand
        return {k: v for k, v in answers.items() if v}

    async def _abrp(self, vin: str, values: Mapping[str, TelemetryValue]) -> str | None:
        key, token = self.settings.abrp_api_key, self.settings.abrp_user_tokens.get(vin)
        if key is None or token is None:
            return None
        telemetry = abrp_telemetry(values)
        if telemetry is None:
            return None
        return await self._post(
            "ABRP",
            f"{self.settings.abrp_api_base}tlm/send",
            params={"token": token, "tlm": json.dumps(telemetry)},
            headers={"Authorization": f"APIKEY {key.get_secret_value()}"},
        )

    async def _osmand(self, server: str, vin: str, values: Mapping[str, TelemetryValue]) -> str | None:
        device = self.settings.osmand_device_ids.get(vin, vin)
        return await self._post("OsmAnd", server, params=osmand_parameters(device, values))

    async def _post(
        self, service: str, url: str, params: dict[str, str], headers: dict[str, str] | None = None
    ) -> str | None:
        import aiohttp

        try:
            http = await self._http()
            async with http.post(url, params=params, headers=headers) as response:
                text = await response.text()
                if response.status >= 400:
                    raise aiohttp.ClientError(f"HTTP {response.status}: {text[:200]}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.failed += 1
            log.warning("%s request failed: %s", service, exc or type(exc).__name__)
            return None
        self.sent += 1
        return text

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
