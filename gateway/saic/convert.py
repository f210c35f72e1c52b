"""SAIC API replies -> topic values, with the upstream gateway's scaling and validity rules.

Every rule here is the upstream gateway's (reference/saic.md 1.1): readings the car marks invalid or
fills with sentinels are left out rather than published as nonsense.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime

from saic_ismart_client_ng.api.schema import GpsPosition
from saic_ismart_client_ng.api.vehicle.schema import BasicVehicleStatus, VehicleStatusResp, VinInfo
from saic_ismart_client_ng.api.vehicle_charging.schema import (
    ChargeCurrentLimitCode,
    ChrgMgmtData,
    ChrgMgmtDataResp,
    RvsChargeStatus,
    ScheduledChargingMode,
    TargetBatteryCode,
)

from common import topics
from common.values import TelemetryValue
from gateway.source import VehicleInfo

type Values = dict[str, TelemetryValue]

GPS_FIX = (2, 3)  # 2D and 3D fix
ELEVATION_RANGE = (-500, 8900)
TEMPERATURE_RANGE = (-127, 127)
TEMPERATURE_SENTINEL = 87
MILEAGE_LIMIT = 2**31
CLIMATE_STATES = {0: "off", 1: "blowingonly", 2: "on", 5: "front"}
WINDOW_KEYS = ("driver", "passenger", "rearLeft", "rearRight")


class InvalidStatus(ValueError):
    """A status the gateway must not publish (no time, or a time far from now)."""


def vehicle_info(vin_info: VinInfo) -> VehicleInfo:
    # Under its name and under its code, as upstream publishes `info/configuration/<both>`.
    configuration = {
        key: item.itemValue or ""
        for item in vin_info.vehicleModelConfiguration
        for key in {item.itemName, item.itemCode}
        if key
    }
    return VehicleInfo(
        vin=vin_info.vin or "",
        brand=(vin_info.brandName or "").strip(),
        model=(vin_info.modelName or "").strip().upper(),  # as upstream: `MG4 ELECTRIC`
        year=int(year) if (year := vin_info.modelYear or "").isdigit() else 0,
        series=(vin_info.series or "").strip().upper(),
        color=(vin_info.colorName or "").strip(),
        configuration=configuration,
        raw_configuration=json.dumps([dataclasses.asdict(item) for item in vin_info.vehicleModelConfiguration]),
    )


def real_battery_capacity(info: VehicleInfo) -> float | None:
    """The usable capacity in kWh, from the series and battery type as upstream knows them: the API
    reports a gross figure (72.5 for a 64 kWh MG4), and upstream scales the energy values by the ratio."""
    long_range = info.supports_target_soc  # the NMC batteries take a target SoC
    if info.series.startswith("EH32"):
        if info.model.startswith("EH32 X3"):  # MG4 Trophy Extended Range
            return 77.0
        return 64.0 if long_range else 51.0
    if info.series.startswith("EP2CP3"):  # MG5 SR Comfort
        return 50.3
    if info.series.startswith("EP2DP3"):  # MG5 MR Luxury
        return 61.1
    if info.series.startswith("ZS EV"):
        return 68.3 if long_range else 49.0
    return None


def status_values(status: VehicleStatusResp, *, now: float, max_drift: float) -> Values:
    if status.statusTime is None:
        raise InvalidStatus("the status has no statusTime")
    drift = status.statusTime - now
    if abs(drift) > max_drift:
        raise InvalidStatus(f"the status time {status.statusTime} is {drift:+.0f}s from now (limit {max_drift:g}s)")
    basic = status.basicVehicleStatus
    if basic is None:
        raise InvalidStatus("the status has no basicVehicleStatus")
    values: Values = {topics.REFRESH_LAST_VEHICLE_STATE: datetime.fromtimestamp(status.statusTime, UTC)}
    values.update(_basic_values(basic))
    values.update(_gps_values(status.gpsPosition, parked=basic.is_parked))
    return values


def _basic_values(b: BasicVehicleStatus) -> Values:
    values: Values = {}
    mileage_valid = b.mileage is not None and 1 <= b.mileage < MILEAGE_LIMIT
    if mileage_valid and b.mileage is not None:
        values[topics.DRIVETRAIN_MILEAGE] = b.mileage / 10
        # Window states are garbage when the mileage is (the car sent a partial status).
        raw_windows = (b.driverWindow, b.passengerWindow, b.rearLeftWindow, b.rearRightWindow)
        values.update(_flags("windows", WINDOW_KEYS, raw_windows))
    values.update(_flags("windows", ("sunRoof",), (b.sunroofStatus,)))
    values[topics.DRIVETRAIN_RUNNING] = b.is_engine_running
    if b.batteryVoltage is not None:
        values[topics.DRIVETRAIN_AUX_BATTERY_VOLTAGE] = b.batteryVoltage / 10
    for key, raw in (
        (topics.CLIMATE_INTERIOR_TEMPERATURE, b.interiorTemperature),
        (topics.CLIMATE_EXTERIOR_TEMPERATURE, b.exteriorTemperature),
    ):
        if raw is not None and _valid_temperature(raw):
            values[key] = raw
    if b.lockStatus is not None:
        values[topics.DOORS_LOCKED] = b.lockStatus == 1
    raw_doors = (b.driverDoor, b.passengerDoor, b.rearLeftDoor, b.rearRightDoor, b.bonnetStatus, b.bootStatus)
    values.update(_flags("doors", ("driver", "passenger", "rearLeft", "rearRight", "bonnet", "boot"), raw_doors))
    raw_tyres = (b.frontLeftTyrePressure, b.frontRightTyrePressure, b.rearLeftTyrePressure, b.rearRightTyrePressure)
    for key, raw in zip(topics.TYRES, raw_tyres, strict=True):
        if raw is not None:
            values[key] = round(raw * 0.04, 2)
    values.update(
        _flags("lights", ("mainBeam", "dippedBeam", "side"), (b.mainBeamStatus, b.dippedBeamStatus, b.sideLightStatus))
    )
    if b.remoteClimateStatus is not None:
        values[topics.CLIMATE_REMOTE_CLIMATE_STATE] = CLIMATE_STATES.get(
            b.remoteClimateStatus, f"unknown ({b.remoteClimateStatus})"
        )
    if b.rmtHtdRrWndSt is not None:
        values[topics.CLIMATE_BACK_WINDOW_HEAT] = "on" if b.rmtHtdRrWndSt == 1 else "off"
    if b.frontLeftSeatHeatLevel is not None:
        values[topics.CLIMATE_HEATED_SEAT_LEFT] = b.frontLeftSeatHeatLevel
    if b.frontRightSeatHeatLevel is not None:
        values[topics.CLIMATE_HEATED_SEAT_RIGHT] = b.frontRightSeatHeatLevel
    if b.currentJourneyId is not None and b.currentJourneyDistance is not None:
        values[topics.DRIVETRAIN_CURRENT_JOURNEY] = {
            "id": b.currentJourneyId,
            "distance": b.currentJourneyDistance / 10,
        }
    # Fallbacks, replaced by the BMS's own figures when the charging data arrives.
    if b.extendedData1 is not None and 0 <= b.extendedData1 <= 100:
        values[topics.DRIVETRAIN_SOC] = float(b.extendedData1)
    if b.fuelRangeElec:
        values[topics.DRIVETRAIN_RANGE] = b.fuelRangeElec / 10
    # A petrol or hybrid car's tank, as upstream publishes it.
    if b.fuelRange is not None and 0 <= b.fuelRange <= 65535:
        values[topics.DRIVETRAIN_FOSSIL_FUEL_RANGE] = b.fuelRange / 10
    if b.fuelLevelPrc is not None and 0 <= b.fuelLevelPrc <= 100:
        values[topics.DRIVETRAIN_FOSSIL_FUEL_PERCENTAGE] = b.fuelLevelPrc
    climate_on = (b.remoteClimateStatus or 0) > 0 or (b.rmtHtdRrWndSt or 0) > 0
    values[topics.DRIVETRAIN_HV_BATTERY_ACTIVE] = b.is_engine_running or climate_on
    return values


def _gps_values(gps: GpsPosition | None, *, parked: bool) -> Values:
    if gps is None or gps.gpsStatus not in GPS_FIX or gps.wayPoint is None or gps.wayPoint.position is None:
        return {}  # no fix: the last good position stays published
    way_point, position = gps.wayPoint, gps.wayPoint.position
    if position.latitude is None or position.longitude is None:
        return {}
    latitude, longitude = position.latitude / 1e6, position.longitude / 1e6
    values: Values = {topics.LOCATION_LATITUDE: latitude, topics.LOCATION_LONGITUDE: longitude}
    altitude = position.altitude
    if altitude is not None and ELEVATION_RANGE[0] <= altitude <= ELEVATION_RANGE[1]:
        values[topics.LOCATION_ELEVATION] = altitude
    if way_point.heading is not None:
        values[topics.LOCATION_HEADING] = way_point.heading
    if way_point.speed is not None:
        values[topics.LOCATION_SPEED] = 0.0 if parked else way_point.speed / 10
    values[topics.LOCATION_POSITION] = {"latitude": latitude, "longitude": longitude, "altitude": altitude}
    return values


def charging_values(data: ChrgMgmtDataResp, info: VehicleInfo) -> Values:
    values: Values = {}
    if data.chrgMgmtData is not None:
        values.update(_bms_values(data.chrgMgmtData))
    if data.rvsChargeStatus is not None:
        values.update(_charge_status_values(data.rvsChargeStatus, real_battery_capacity(info)))
    return values


def _bms_values(d: ChrgMgmtData) -> Values:
    values: Values = {}
    current, voltage = d.decoded_current, d.decoded_voltage
    if current is not None and d.bmsPackCrntV != 1:  # bmsPackCrntV == 1 marks the current invalid
        values[topics.DRIVETRAIN_CURRENT] = round(current, 2)
    if voltage is not None:
        values[topics.DRIVETRAIN_VOLTAGE] = round(voltage, 2)
    if topics.DRIVETRAIN_CURRENT in values and voltage is not None and current is not None:
        values[topics.DRIVETRAIN_POWER] = round(current * voltage / 1000, 2)
    if d.bmsPackSOCDsp is not None and 0 <= d.bmsPackSOCDsp <= 1000:
        values[topics.DRIVETRAIN_SOC] = d.bmsPackSOCDsp / 10
    if d.bmsChrgSts is not None:
        values[topics.DRIVETRAIN_CHARGING] = d.is_bms_charging
        status = d.bms_charging_status
        values[topics.BMS_CHARGE_STATUS] = status.name if status else f"UNKNOWN_{d.bmsChrgSts}"
    target = d.charge_target_soc
    if target is not None and target is not TargetBatteryCode.P_IGNORE:
        values[topics.DRIVETRAIN_SOC_TARGET] = target.percentage
    limit = d.charge_current_limit
    if limit is not None and limit is not ChargeCurrentLimitCode.C_IGNORE:
        values[topics.DRIVETRAIN_CHARGE_CURRENT_LIMIT] = limit.limit
    if d.chrgngRmnngTime is not None:
        valid = d.chrgngRmnngTimeV != 1
        values[topics.DRIVETRAIN_REMAINING_CHARGING_TIME] = d.chrgngRmnngTime * 60 if valid else 0
    if d.bmsPTCHeatReqDspCmd is not None:
        values[topics.DRIVETRAIN_BATTERY_HEATING] = d.is_battery_heating
    if d.ccuEleccLckCtrlDspCmd is not None:
        values[topics.DRIVETRAIN_CHARGING_CABLE_LOCK] = d.charging_port_locked
    schedule = _charging_schedule(d)
    if schedule is not None:
        values[topics.DRIVETRAIN_CHARGING_SCHEDULE] = schedule
    values.update(_on_board_charger_values(d))
    if d.bmsEstdElecRng is not None and 0 <= d.bmsEstdElecRng <= 2046:
        values[topics.DRIVETRAIN_HYBRID_ELECTRICAL_RANGE] = d.bmsEstdElecRng
    if d.bmsChrgSpRsn is not None:
        charging_stop = d.charging_stop_reason
        values[topics.DRIVETRAIN_CHARGING_STOP_REASON] = (
            charging_stop.name if charging_stop else f"UNKNOWN {d.bmsChrgSpRsn}"
        )
    if d.bmsPTCHeatResp is not None:
        heating_stop = d.heating_stop_reason
        values[topics.DRIVETRAIN_BATTERY_HEATING_STOP_REASON] = (
            heating_stop.name if heating_stop else f"UNKNOWN ({d.bmsPTCHeatResp})"
        )
    if d.ccuOnbdChrgrPlugOn is not None:
        values[topics.CCU_ONBOARD_PLUG_STATUS] = d.ccuOnbdChrgrPlugOn
    if d.ccuOffBdChrgrPlugOn is not None:
        values[topics.CCU_OFFBOARD_PLUG_STATUS] = d.ccuOffBdChrgrPlugOn
    return values


def _on_board_charger_values(d: ChrgMgmtData) -> Values:
    """The AC charger's input, scaled as upstream: volts x2, amps /5; zero when the car reports none."""
    volts, amps = d.onBdChrgrAltrCrntInptVol, d.onBdChrgrAltrCrntInptCrnt
    if volts is None or amps is None:
        return {topics.OBC_CURRENT: 0.0, topics.OBC_VOLTAGE: 0}
    return {
        topics.OBC_CURRENT: round(amps / 5.0, 1),
        topics.OBC_VOLTAGE: 2 * volts,
        topics.OBC_POWER_SINGLE_PHASE: round(2.0 * volts * amps / 5.0, 1),
        topics.OBC_POWER_THREE_PHASE: round(math.sqrt(3) * 2 * volts * amps / 15.0, 1),
    }


def _charging_schedule(d: ChrgMgmtData) -> dict[str, str] | None:
    parts = (d.bmsReserStHourDspCmd, d.bmsReserStMintueDspCmd, d.bmsReserSpHourDspCmd, d.bmsReserSpMintueDspCmd)
    if d.bmsReserCtrlDspCmd is None or any(p is None for p in parts):
        return None
    try:
        mode = ScheduledChargingMode(d.bmsReserCtrlDspCmd).name
    except ValueError:
        return None
    start_h, start_m, end_h, end_m = parts
    return {"startTime": f"{start_h:02d}:{start_m:02d}", "endTime": f"{end_h:02d}:{end_m:02d}", "mode": mode}


def _charge_status_values(r: RvsChargeStatus, real_capacity: float | None) -> Values:
    values: Values = {}
    if r.chargingGunState is not None:
        values[topics.DRIVETRAIN_CHARGER_CONNECTED] = bool(r.chargingGunState)
    if r.chargingType is not None:
        values[topics.DRIVETRAIN_CHARGING_TYPE] = r.chargingType
    reported = r.totalBatteryCapacity / 10 if r.totalBatteryCapacity and r.totalBatteryCapacity > 0 else None
    # Upstream publishes the usable capacity and scales the reported energies by usable / reported.
    capacity = real_capacity or reported
    factor = real_capacity / reported if real_capacity and reported else 1.0
    if capacity:
        values[topics.DRIVETRAIN_TOTAL_BATTERY_CAPACITY] = capacity
    if r.fuelRangeElec:
        values[topics.DRIVETRAIN_RANGE] = r.fuelRangeElec / 10
    for key, raw in (
        (topics.DRIVETRAIN_MILEAGE_OF_DAY, r.mileageOfDay),
        (topics.DRIVETRAIN_MILEAGE_SINCE_LAST_CHARGE, r.mileageSinceLastCharge),
    ):
        if raw is not None and 0 <= raw <= 65535:
            values[key] = raw / 10.0
    for key, raw in (
        (topics.DRIVETRAIN_CHARGING_LAST_START, r.startTime),
        (topics.DRIVETRAIN_CHARGING_LAST_END, r.endTime),
    ):
        if raw is not None and 1 <= raw <= 2_147_483_647:
            values[key] = raw
    if r.realtimePower is not None:
        values[topics.DRIVETRAIN_SOC_KWH] = round(factor * r.realtimePower / 10.0, 2)
    energies = (
        (topics.DRIVETRAIN_LAST_CHARGE_ENDING_POWER, r.lastChargeEndingPower),
        (topics.DRIVETRAIN_POWER_USAGE_OF_DAY, r.powerUsageOfDay),
        (topics.DRIVETRAIN_POWER_USAGE_SINCE_LAST_CHARGE, r.powerUsageSinceLastCharge),
    )
    for key, raw in energies:
        if raw is not None and 0 <= raw <= 65535:
            values[key] = round(factor * raw / 10.0, 2)
    return values


def fuse(values: Values) -> None:
    """Derived values that need both replies."""
    if values.get(topics.DRIVETRAIN_CHARGING) is True:
        values[topics.DRIVETRAIN_HV_BATTERY_ACTIVE] = True


def _valid_temperature(raw: int) -> bool:
    low, high = TEMPERATURE_RANGE
    return low <= raw <= high and raw != TEMPERATURE_SENTINEL


def _flags(category: str, names: tuple[str, ...], raws: tuple[int | None, ...]) -> Values:
    return {f"{category}/{name}": bool(raw) for name, raw in zip(names, raws, strict=True) if raw is not None}
