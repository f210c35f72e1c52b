"""Charging stations as upstream's OpenWB integration: the wallbox's charge state makes the gateway
poll the car, and the car's SoC and range go back to the wallbox's topics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.settings import MqttSettings, SettingsError
from gateway.integrations.openwb import load_charging_stations
from gateway.integrations.settings import IntegrationSettings
from tests.gateway.test_gateway import running_gateway, vin
from tests.helpers import client, latest_on, wait_until

STATE_TOPIC = "openWB/lp/1/boolChargeStat"
SOC_TOPIC = "openWB/set/lp/1/%Soc"
RANGE_TOPIC = "wallbox/car-one/range"


def stations_file(tmp_path: Path, entries: object) -> Path:
    path = tmp_path / "charging-stations.json"
    path.write_text(json.dumps(entries))
    return path


async def test_the_wallbox_makes_the_car_polled_and_gets_its_soc(private_mqtt: MqttSettings, tmp_path: Path) -> None:
    path = stations_file(
        tmp_path,
        [
            {
                "vin": vin(1),
                "chargeStateTopic": STATE_TOPIC,
                "chargingValue": "1",
                "socTopic": SOC_TOPIC,
                "rangeTopic": RANGE_TOPIC,
            }
        ],
    )
    integrations = IntegrationSettings.from_env({"CHARGING_STATIONS_FILE": str(path)})
    async with (
        running_gateway(private_mqtt, poll=3600, integrations=integrations) as gateway,
        client(private_mqtt, "integrations") as wallbox,
    ):
        await wallbox.subscribe(SOC_TOPIC, qos=1)
        await wallbox.subscribe(RANGE_TOPIC, qos=1)
        readings = await latest_on(wallbox, {SOC_TOPIC, RANGE_TOPIC})
        polls = gateway.polls
        await wallbox.publish(STATE_TOPIC, b"1", qos=1)  # the wallbox starts charging
        await wait_until(lambda: gateway.polls > polls, what="the car polled at once, not in an hour")
        soc = float(readings[SOC_TOPIC])
    assert abs(soc - gateway.source.vehicle(vin(1)).soc) < 5  # type: ignore[attr-defined]
    assert float(readings[RANGE_TOPIC]) > 0


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ({"vin": "x"}, "expected a JSON list"),
        ([{"vin": "LSJTEST0000000001"}], "needs vin, chargeStateTopic and chargingValue"),
        ([{"vin": "nope", "chargeStateTopic": "openWB/a", "chargingValue": "1"}], "is not a VIN"),
        (
            [{"vin": "LSJTEST0000000001", "chargeStateTopic": "saic/steal/this", "chargingValue": "1"}],
            "must be a topic under openWB/ or wallbox/",
        ),
    ],
)
def test_a_bad_stations_file_is_refused_with_the_reason(tmp_path: Path, entries: object, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        load_charging_stations(stations_file(tmp_path, entries))
