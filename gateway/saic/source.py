"""The SAIC iSMART API as a vehicle source: the account's vehicles, their status and charging data."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from saic_ismart_client_ng.api.vehicle_charging.schema import ScheduledBatteryHeatingResp
from saic_ismart_client_ng.exceptions import SaicApiException

from common import topics
from gateway.metrics import GatewayMetrics
from gateway.saic import convert
from gateway.saic.control import SaicControl
from gateway.saic.guards import CircuitOpen
from gateway.saic.http import saic_api
from gateway.saic.messages import MessageInbox
from gateway.saic.session import SaicSession
from gateway.saic.settings import SaicSettings
from gateway.source import VehicleControl, VehicleInfo, VehicleMessage

log = logging.getLogger(__name__)


class SaicVehicleSource:
    expected_errors: tuple[type[Exception], ...] = (SaicApiException, convert.InvalidStatus, CircuitOpen)

    def __init__(
        self,
        session: SaicSession,
        max_status_drift: float,
        schedule_refresh: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self.max_status_drift = max_status_drift
        self.schedule_refresh = schedule_refresh
        self._clock = clock
        self._vehicles: dict[str, VehicleInfo] = {}
        self._soc_targets: dict[str, int] = {}
        self._heating_starts: dict[str, str] = {}
        self._schedule_read_at: dict[str, float] = {}
        self.inbox = MessageInbox(session)

    @classmethod
    def from_settings(cls, settings: SaicSettings, metrics: GatewayMetrics) -> SaicVehicleSource:
        session = SaicSession(saic_api(settings), settings, metrics)
        return cls(session, settings.max_status_drift, settings.schedule_refresh)

    async def vehicles(self) -> list[VehicleInfo]:
        reply = await self.session.call("vehicle_list", lambda api: api.vehicle_list(), urgent=True)
        infos = [convert.vehicle_info(v) for v in reply.vinList if v.vin]
        self._vehicles = {info.vin: info for info in infos}
        return infos

    def throttled_seconds(self) -> float:
        return self.session.limiter.waited

    def calls_today(self, vin: str) -> int:
        return self.session.daily_calls.today(vin)

    async def poll(self, vin: str) -> convert.Values:
        info = self._vehicles[vin]
        status = await self.session.call("vehicle_status", lambda api: api.get_vehicle_status(vin), vin=vin)
        values = convert.status_values(status, now=self._clock(), max_drift=self.max_status_drift)
        if info.is_electric:
            try:
                charging = await self.session.call(
                    "charging_data", lambda api: api.get_vehicle_charging_management_data(vin), vin=vin
                )
            except SaicApiException as exc:
                # The status alone is still worth publishing; the charging data comes with the next poll.
                log.warning("charging data of %s unavailable: %s", vin, exc)
            else:
                values.update(convert.charging_values(charging, info))
                values[topics.REFRESH_LAST_CHARGE_STATE] = datetime.fromtimestamp(self._clock(), UTC).replace(
                    microsecond=0
                )
            if self._schedule_due(vin):
                try:
                    schedule = await self.session.call(
                        "battery_heating_schedule", lambda api: api.get_vehicle_battery_heating_schedule(vin), vin=vin
                    )
                except (SaicApiException, CircuitOpen) as exc:
                    log.warning("battery heating schedule of %s unavailable: %s", vin, exc)
                else:
                    self._schedule_read_at[vin] = self._clock()
                    values[topics.DRIVETRAIN_BATTERY_HEATING_SCHEDULE] = self._heating_schedule(vin, schedule)
        convert.fuse(values)
        target = values.get(topics.DRIVETRAIN_SOC_TARGET)
        if isinstance(target, int):
            self._soc_targets[vin] = target
        return values

    def _schedule_due(self, vin: str) -> bool:
        """Upstream reads the schedule on every poll. It changes only when the owner sets it (in the
        app, or by a command, after which it is read again at once), so reading it every
        `schedule_refresh` seconds saves a third of an electric car's calls."""
        read_at = self._schedule_read_at.get(vin)
        return read_at is None or self._clock() - read_at >= self.schedule_refresh

    def _heating_schedule(self, vin: str, reply: ScheduledBatteryHeatingResp | None) -> dict[str, str]:
        """As upstream: `{"mode": "on"|"off", "startTime": "HH:MM"}`, the last known start kept while off."""
        start = reply.decode_start_time() if reply is not None and reply.is_enabled else None
        if start is not None:
            self._heating_starts[vin] = start.strftime("%H:%M")
        mode = "on" if start is not None else "off"
        return {"mode": mode, "startTime": self._heating_starts.get(vin, "00:00")}

    async def heard_from(self, vin: str) -> datetime | None:
        cached = await self.session.call(
            "vehicle_status_cache", lambda api: api.get_vehicle_status_cached(vin), vin=vin
        )
        return datetime.fromtimestamp(cached.statusTime, UTC) if cached.statusTime else None

    async def new_messages(self) -> list[VehicleMessage]:
        return await self.inbox.check()

    def control(self, vin: str) -> VehicleControl:
        return SaicControl(
            self.session,
            self._vehicles[vin],
            lambda: self._soc_targets.get(vin),
            schedule_changed=lambda: self._schedule_read_at.pop(vin, None),
        )

    async def close(self) -> None:
        await self.session.close()
