"""Scaling and validity rules for SAIC replies, on hand-made replies with the sentinels real cars send."""

from __future__ import annotations

import math
import time
from typing import Any

import dacite
import pytest
from saic_ismart_client_ng.api.vehicle.schema import VehicleStatusResp, VinInfo
from saic_ismart_client_ng.api.vehicle_charging.schema import ChrgMgmtDataResp

from common import topics
from gateway.saic import convert
from gateway.source import VehicleInfo

NOW = time.time()


MG4_LONG_RANGE = VehicleInfo("LSJTEST0000000001", "MG", "MG4 ELECTRIC", 2023, "EH32 S", "", {"Battery": "1"})


def status(basic: dict[str, Any] | None = None, gps: dict[str, Any] | None = None, **extra: Any) -> VehicleStatusResp:
    data: dict[str, Any] = {
        "statusTime": int(NOW),
        "basicVehicleStatus": {"mileage": 123456, "engineStatus": 0, "handBrake": 1, **(basic or {})},
        **extra,
    }
    if gps is not None:
        data["gpsPosition"] = gps
    return dacite.from_dict(VehicleStatusResp, data)


def values(resp: VehicleStatusResp) -> convert.Values:
    return convert.status_values(resp, now=NOW, max_drift=900)


def test_scaling_of_a_full_status() -> None:
    v = values(
        status(
            {
                "batteryVoltage": 126,
                "lockStatus": 1,
                "frontLeftTyrePressure": 66,
                "interiorTemperature": 21,
                "remoteClimateStatus": 2,
                "rmtHtdRrWndSt": 0,
                "driverWindow": 1,
                "fuelRangeElec": 2345,
                "extendedData1": 77,
            },
            gps={
                "gpsStatus": 3,
                "wayPoint": {
                    "position": {"latitude": 52370216, "longitude": 4895168, "altitude": 3},
                    "heading": 90,
                    "speed": 512,
                },
            },
        )
    )
    assert v[topics.DRIVETRAIN_MILEAGE] == 12345.6
    assert v[topics.DRIVETRAIN_AUX_BATTERY_VOLTAGE] == 12.6
    assert v[topics.DOORS_LOCKED] is True
    assert v["tyres/frontLeftPressure"] == 2.64
    assert v[topics.CLIMATE_INTERIOR_TEMPERATURE] == 21
    assert v[topics.CLIMATE_REMOTE_CLIMATE_STATE] == "on"
    assert v[topics.CLIMATE_BACK_WINDOW_HEAT] == "off"
    assert v["windows/driver"] is True
    assert v[topics.DRIVETRAIN_RANGE] == 234.5
    assert v[topics.DRIVETRAIN_SOC] == 77.0
    assert v[topics.LOCATION_LATITUDE] == 52.370216
    assert v[topics.LOCATION_ELEVATION] == 3
    assert v[topics.LOCATION_SPEED] == 0.0  # parked (handbrake on): upstream publishes 0
    assert v[topics.DRIVETRAIN_HV_BATTERY_ACTIVE] is True  # the climate runs on the traction battery


@pytest.mark.parametrize("raw", [-128, 87, 200])
def test_sentinel_temperatures_are_dropped(raw: int) -> None:
    v = values(status({"interiorTemperature": raw, "exteriorTemperature": 5}))
    assert topics.CLIMATE_INTERIOR_TEMPERATURE not in v
    assert v[topics.CLIMATE_EXTERIOR_TEMPERATURE] == 5


@pytest.mark.parametrize("mileage", [0, 2**31, None])
def test_an_invalid_mileage_drops_mileage_and_windows(mileage: int | None) -> None:
    v = values(status({"mileage": mileage, "driverWindow": 1}))
    assert topics.DRIVETRAIN_MILEAGE not in v
    assert "windows/driver" not in v


@pytest.mark.parametrize("gps_status", [0, 1])
def test_a_position_without_a_fix_is_not_published(gps_status: int) -> None:
    gps = {"gpsStatus": gps_status, "wayPoint": {"position": {"latitude": 1, "longitude": 2, "altitude": 3}}}
    assert not any(k.startswith("location/") for k in values(status(gps=gps)))


def test_an_elevation_out_of_range_is_dropped() -> None:
    gps = {"gpsStatus": 2, "wayPoint": {"position": {"latitude": 1, "longitude": 2, "altitude": 9999}}}
    v = values(status(gps=gps))
    assert topics.LOCATION_ELEVATION not in v
    assert v[topics.LOCATION_LATITUDE] == 1e-6


@pytest.mark.parametrize("status_time", [2147483647, int(NOW) - 7200, None])
def test_stale_future_or_missing_status_times_are_rejected(status_time: int | None) -> None:
    resp = status(statusTime=status_time)
    with pytest.raises(convert.InvalidStatus):
        values(resp)


def test_charging_data() -> None:
    data = dacite.from_dict(
        ChrgMgmtDataResp,
        {
            "chrgMgmtData": {
                "bmsPackCrnt": 19600,  # x0.05 - 1000 = -20 A
                "bmsPackCrntV": 0,
                "bmsPackVol": 1600,  # x0.25 = 400 V
                "bmsPackSOCDsp": 805,
                "bmsChrgSts": 1,
                "bmsOnBdChrgTrgtSOCDspCmd": 6,
                "bmsAltngChrgCrntDspCmd": 4,
                "chrgngRmnngTime": 95,
                "chrgngRmnngTimeV": 0,
                "bmsReserCtrlDspCmd": 1,
                "bmsReserStHourDspCmd": 1,
                "bmsReserStMintueDspCmd": 5,
                "bmsReserSpHourDspCmd": 6,
                "bmsReserSpMintueDspCmd": 0,
                "onBdChrgrAltrCrntInptVol": 115,
                "onBdChrgrAltrCrntInptCrnt": 80,
                "bmsEstdElecRng": 300,
                "bmsChrgSpRsn": 0,
                "bmsPTCHeatResp": 0,
                "ccuOnbdChrgrPlugOn": 1,
                "ccuOffBdChrgrPlugOn": 0,
            },
            "rvsChargeStatus": {
                "chargingGunState": 1,
                "totalBatteryCapacity": 725,
                "fuelRangeElec": 3000,
                "mileageOfDay": 256,
                "mileageSinceLastCharge": 70000,
                "startTime": 1_764_500_000,
                "endTime": 0,
                "realtimePower": 580,
                "lastChargeEndingPower": 653,
                "powerUsageOfDay": 42,
                "powerUsageSinceLastCharge": 150,
            },
        },
    )
    v = convert.charging_values(data, MG4_LONG_RANGE)
    assert v[topics.DRIVETRAIN_CURRENT] == -20.0
    assert v[topics.DRIVETRAIN_VOLTAGE] == 400.0
    assert v[topics.DRIVETRAIN_POWER] == -8.0  # negative = charging
    assert v[topics.DRIVETRAIN_SOC] == 80.5
    assert v[topics.DRIVETRAIN_CHARGING] is True
    assert v[topics.BMS_CHARGE_STATUS] == "CHARGING_1"
    assert v[topics.DRIVETRAIN_SOC_TARGET] == 90
    assert v[topics.DRIVETRAIN_CHARGE_CURRENT_LIMIT] == "Max"
    assert v[topics.DRIVETRAIN_REMAINING_CHARGING_TIME] == 95 * 60
    assert v[topics.DRIVETRAIN_CHARGING_SCHEDULE] == {
        "startTime": "01:05",
        "endTime": "06:00",
        "mode": "UNTIL_CONFIGURED_TIME",
    }
    assert v[topics.DRIVETRAIN_CHARGER_CONNECTED] is True
    assert v[topics.DRIVETRAIN_RANGE] == 300.0
    # As upstream: the usable 64 kWh of an MG4 long range, not the 72.5 the API reports, and the
    # reported energies scaled by 64 / 72.5.
    assert v[topics.DRIVETRAIN_TOTAL_BATTERY_CAPACITY] == 64.0
    assert v[topics.DRIVETRAIN_SOC_KWH] == round(64 / 72.5 * 58.0, 2)
    assert v[topics.DRIVETRAIN_LAST_CHARGE_ENDING_POWER] == round(64 / 72.5 * 65.3, 2)
    assert v[topics.DRIVETRAIN_POWER_USAGE_OF_DAY] == round(64 / 72.5 * 4.2, 2)
    assert v[topics.DRIVETRAIN_POWER_USAGE_SINCE_LAST_CHARGE] == round(64 / 72.5 * 15.0, 2)
    assert v[topics.DRIVETRAIN_MILEAGE_OF_DAY] == 25.6
    assert topics.DRIVETRAIN_MILEAGE_SINCE_LAST_CHARGE not in v  # 70,000 is past the field's range
    assert v[topics.DRIVETRAIN_CHARGING_LAST_START] == 1_764_500_000
    assert topics.DRIVETRAIN_CHARGING_LAST_END not in v  # 0: never
    assert (v[topics.OBC_VOLTAGE], v[topics.OBC_CURRENT]) == (230, 16.0)
    assert v[topics.OBC_POWER_SINGLE_PHASE] == 3680.0
    assert v[topics.OBC_POWER_THREE_PHASE] == round(math.sqrt(3) * 230 * 16 / 3, 1)
    assert v[topics.DRIVETRAIN_HYBRID_ELECTRICAL_RANGE] == 300
    assert v[topics.DRIVETRAIN_CHARGING_STOP_REASON] == "NO_REASON"
    assert v[topics.CCU_ONBOARD_PLUG_STATUS] == 1


@pytest.mark.parametrize(
    ("series", "model", "battery", "capacity"),
    [
        ("EH32 S", "MG4 ELECTRIC", "1", 64.0),
        ("EH32 S", "MG4 ELECTRIC", "0", 51.0),
        ("EH32 S", "EH32 X3 TROPHY", "1", 77.0),
        ("EP2CP3", "MG5 ELECTRIC", "0", 50.3),
        ("EP2DP3", "MG5 ELECTRIC", "0", 61.1),
        ("ZS EV", "ZS EV", "1", 68.3),
        ("ZP22", "MG HS", "0", None),
    ],
)
def test_the_usable_battery_capacity_as_upstream_knows_it(
    series: str, model: str, battery: str, capacity: float | None
) -> None:
    info = VehicleInfo("V", "MG", model, 2023, series, "", {"Battery": battery})
    assert convert.real_battery_capacity(info) == capacity


def test_an_invalid_current_is_left_out() -> None:
    data = dacite.from_dict(
        ChrgMgmtDataResp,
        {
            "chrgMgmtData": {
                "bmsPackCrnt": 19600,
                "bmsPackCrntV": 1,
                "bmsPackVol": 1600,
                "chrgngRmnngTime": 30,
                "chrgngRmnngTimeV": 1,
            }
        },
    )
    v = convert.charging_values(data, MG4_LONG_RANGE)
    assert topics.DRIVETRAIN_CURRENT not in v
    assert topics.DRIVETRAIN_POWER not in v
    assert v[topics.DRIVETRAIN_REMAINING_CHARGING_TIME] == 0


def test_vehicle_info_and_model_configuration() -> None:
    info = convert.vehicle_info(
        dacite.from_dict(
            VinInfo,
            {
                "vin": "LSJW0000000000001",
                "brandName": "MG",
                "modelName": "MG4 Electric",
                "modelYear": "2023",
                "series": "EH32 S",
                "vehicleModelConfiguration": [{"itemCode": "J17", "itemName": "HeatedSeat", "itemValue": "2"}],
            },
        )
    )
    assert (info.year, info.configuration) == (2023, {"HeatedSeat": "2", "J17": "2"})
    assert info.model == "MG4 ELECTRIC"  # as upstream
    assert info.is_electric
    assert info.topic_values()["info/configuration/HeatedSeat"] == "2"
    assert info.topic_values()["info/configuration/J17"] == "2"  # and under its code, as upstream


def test_a_petrol_cars_tank_as_upstream_publishes_it() -> None:
    v = values(status({"fuelRange": 4567, "fuelLevelPrc": 63}))
    assert (v[topics.DRIVETRAIN_FOSSIL_FUEL_RANGE], v[topics.DRIVETRAIN_FOSSIL_FUEL_PERCENTAGE]) == (456.7, 63)
    v = values(status({"fuelRange": 70000, "fuelLevelPrc": 255}))  # out of range: left out
    assert topics.DRIVETRAIN_FOSSIL_FUEL_RANGE not in v
    assert topics.DRIVETRAIN_FOSSIL_FUEL_PERCENTAGE not in v
