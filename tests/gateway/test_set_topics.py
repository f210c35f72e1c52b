"""The upstream gateway's `.../set` topics: plain payloads in, `Success` / `Failed: ...` out."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from common.settings import MqttSettings
from gateway.refresh import RefreshMode
from gateway.simulator import SimulatedFleet
from tests.gateway.test_gateway import root, running_gateway, vin
from tests.helpers import client, collect, wait_until


async def set_topic(api: aiomqtt.Client, key: str, payload: str, *, retain: bool = False) -> str:
    """The reply to this request; the result retained from an earlier one (retain flag set) is skipped."""
    await api.subscribe(f"{root(1)}/{key}/result", qos=1)
    await api.publish(f"{root(1)}/{key}/set", payload, qos=1, retain=retain)
    async with asyncio.timeout(5):
        async for message in api.messages:
            if not message.retain:
                return bytes(message.payload).decode()
    raise AssertionError("no reply")


@pytest.mark.parametrize(
    ("key", "payload", "check"),
    [
        ("doors/locked", "False", lambda v: v.locked is False),
        ("doors/boot", "false", lambda v: v.boot_open is True),
        ("drivetrain/socTarget", "90", lambda v: v.soc_target == 90),
        ("drivetrain/chargeCurrentLimit", "16A", lambda v: v.charge_current_limit == "16A"),
        ("climate/remoteClimateState", "ON", lambda v: v.climate_mode == "on"),
        ("climate/rearWindowDefrosterHeating", "on", lambda v: v.rear_window_heat is True),
        ("climate/heatedSeatsFrontLeftLevel", "2", lambda v: v.heated_seats == (2, 0)),
        ("drivetrain/batteryHeating", "true", lambda v: v.battery_heating is True),
        (
            "drivetrain/chargingSchedule",
            '{"startTime": "01:30", "endTime": "06:00", "mode": "UNTIL_CONFIGURED_TIME"}',
            lambda v: v.charging_schedule == ("01:30", "06:00", "UNTIL_CONFIGURED_TIME"),
        ),
        (
            "drivetrain/batteryHeatingSchedule",
            '{"startTime": "05:45", "mode": "on"}',
            lambda v: v.battery_heating_start == "05:45",
        ),
        ("location/findMyCar", "activate", lambda v: v.lights_until > 0),
    ],
)
async def test_set_topics_drive_the_car(mqtt_settings: MqttSettings, key: str, payload: str, check: object) -> None:
    async with running_gateway(mqtt_settings) as gateway, client(mqtt_settings, "integrations") as api:
        reply = await set_topic(api, key, payload)
        assert isinstance(gateway.source, SimulatedFleet)
        vehicle = gateway.source.vehicle(vin(1))
    assert reply == "Success"
    assert callable(check)
    assert check(vehicle)


@pytest.mark.parametrize(
    ("key", "payload", "reason"),
    [
        ("doors/locked", "maybe", "expected true or false"),
        ("drivetrain/socTarget", "45", "percent"),
        ("climate/remoteClimateState", "arctic", "expected one of"),
        ("drivetrain/chargingSchedule", "not json", "expected a JSON object"),
        ("refresh/period/active", "-5", "positive"),
        ("windows/driver", "true", "unsupported topic windows/driver/set"),
        ("doors/boot", "true", "only be opened"),
    ],
)
async def test_bad_set_payloads_fail_with_a_reason(
    mqtt_settings: MqttSettings, key: str, payload: str, reason: str
) -> None:
    async with running_gateway(mqtt_settings) as gateway, client(mqtt_settings, "integrations") as api:
        reply = await set_topic(api, key, payload)
        assert gateway.dispatcher.metrics.commands.labels("lock", "succeeded")._value.get() == 0
    assert reply.startswith("Failed: ")
    assert reason in reply


async def test_refresh_mode_and_periods(mqtt_settings: MqttSettings) -> None:
    async with running_gateway(mqtt_settings, poll=0.2) as gateway, client(mqtt_settings, "integrations") as api:
        assert await set_topic(api, "refresh/mode", "off") == "Success"
        assert gateway.refresh[vin(1)].mode is RefreshMode.OFF
        polls = gateway.polls
        assert await set_topic(api, "refresh/mode", "force") == "Success"  # evcc's wake-up
        await wait_until(lambda: gateway.polls > polls, what="the forced poll")
        assert gateway.refresh[vin(1)].mode is RefreshMode.OFF  # back to the mode before the force
        assert await set_topic(api, "refresh/period/inActive", "3600") == "Success"
        assert gateway.refresh[vin(1)].periods.inactive == 3600
        await api.subscribe(f"{root(1)}/refresh/period/inActive", qos=1)
        [echo] = await collect(api, 1, timeout=3)
    assert echo.payload == b"3600"


async def test_a_retained_action_is_cleared_and_never_run(mqtt_settings: MqttSettings) -> None:
    async with client(mqtt_settings, "integrations") as api:
        await api.publish(f"{root(1)}/doors/locked/set", "false", qos=1, retain=True)
        await api.publish(f"{root(1)}/refresh/mode/set", "off", qos=1, retain=True)
    async with running_gateway(mqtt_settings) as gateway:
        assert isinstance(gateway.source, SimulatedFleet)
        await wait_until(lambda: gateway.refresh[vin(1)].mode is RefreshMode.OFF, what="the retained setting applied")

        async def action_cleared() -> bool:
            # The gateway clears it as it comes, in no order with the setting: ask until it is gone.
            async with client(mqtt_settings, "integrations") as api:
                await api.subscribe(f"{root(1)}/doors/locked/set", qos=1)
                return not [m for m in await collect(api, 1, timeout=0.5) if m.payload]

        await wait_until(action_cleared, timeout=5, what="the retained action cleared")
        assert gateway.source.vehicle(vin(1)).locked is True
    async with client(mqtt_settings, "integrations") as api:  # leave no retained setting for the next test
        await api.publish(f"{root(1)}/refresh/mode/set", b"", qos=1, retain=True)


async def test_a_new_temperature_is_sent_to_a_running_air_conditioning(mqtt_settings: MqttSettings) -> None:
    async with running_gateway(mqtt_settings) as gateway, client(mqtt_settings, "integrations") as api:
        assert isinstance(gateway.source, SimulatedFleet)
        vehicle = gateway.source.vehicle(vin(1))
        assert await set_topic(api, "climate/remoteClimateState", "on") == "Success"
        await wait_until(lambda: gateway.latest(vin(1), "climate/remoteClimateState") == "on", what="A/C on")
        assert await set_topic(api, "climate/remoteTemperature", "25") == "Success"
        await wait_until(lambda: vehicle.remote_temperature == 25, what="the new temperature reaching the car")
        assert await set_topic(api, "climate/remoteTemperature", "40") == "Success"  # clamped to 28
        await wait_until(lambda: vehicle.remote_temperature == 28, what="the clamped temperature")


async def test_results_are_retained_and_an_empty_request_is_answered(mqtt_settings: MqttSettings) -> None:
    """As upstream: a dashboard that subscribes later still sees the last result, and an empty
    payload gets `Failed: ...` rather than silence."""
    async with running_gateway(mqtt_settings), client(mqtt_settings, "integrations") as api:
        assert await set_topic(api, "refresh/period/active", "") == "Failed: an empty payload (expected a value)"
        assert await set_topic(api, "refresh/period/active", "7") == "Success"
    async with client(mqtt_settings, "integrations") as later:
        await later.subscribe(f"{root(1)}/refresh/period/active/result", qos=1)
        [last] = await collect(later, 1, timeout=3)
    assert (last.payload, last.retain) == (b"Success", True)
