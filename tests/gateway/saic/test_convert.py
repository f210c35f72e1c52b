"""Scaling and validity rules for SAIC replies, on hand-made replies with the sentinels real cars send."""

from __future__ import annotations

import time
from typing import Any

import dacite
import pytest
from saic_ismart_client_ng.api.vehicle.schema import VehicleStatusResp, VinInfo
from saic_ismart_client_ng.api.vehicle_charging.schema import ChrgMgmtDataResp

from common import topics
from gateway.saic import convert

NOW = time.time()


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
            },
            "rvsChargeStatus": {"chargingGunState": 1, "totalBatteryCapacity": 640, "fuelRangeElec": 3000},
        },
    )
    v = convert.charging_values(data)
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
    assert v[topics.DRIVETRAIN_TOTAL_BATTERY_CAPACITY] == 64.0
    assert v[topics.DRIVETRAIN_RANGE] == 300.0


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
    v = convert.charging_values(data)
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
    assert (info.year, info.configuration) == (2023, {"HeatedSeat": "2"})
    assert convert.is_electric(info)
    assert info.topic_values()["info/configuration/HeatedSeat"] == "2"
