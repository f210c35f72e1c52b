"""The gateway drives the real saic-ismart-client-ng over HTTP against the SAIC wire-protocol test server."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
import uuid
from typing import Any

import aiomqtt
import asyncpg
import pytest
from prometheus_client import generate_latest
from saic_ismart_client_ng.crypto_utils import sha256_hex_digest

from common import topics
from common.settings import DatabaseSettings, MqttSettings
from gateway.simulator import Phase, SimulatedFleet
from tests.gateway.saic.conftest import running_saic_gateway
from tests.gateway.test_gateway import results, vin
from tests.helpers import client, collect, latest_on, wait_until
from tests.ingest.test_ingest import running_ingest
from tests.saic_server import Fault, SaicTestServer

VIN = "LSJTEST0000000001"


def root(server: SaicTestServer, vin: str = VIN) -> str:
    return topics.VehicleTopics("saic", server.username, vin).root


async def retained_values(api: aiomqtt.Client, prefix: str, count: int) -> dict[str, bytes]:
    await api.subscribe(f"{prefix}/#", qos=1)
    return {m.topic.value.removeprefix(prefix + "/"): bytes(m.payload) for m in await collect(api, count, timeout=3)}


async def command(api: aiomqtt.Client, server: SaicTestServer, name: str, args: dict[str, Any]) -> dict[str, Any]:
    command_id = str(uuid.uuid4())
    topic = f"{root(server)}/cmd/{name}"
    await api.subscribe(f"{topic}/result", qos=1)
    await api.publish(topic, json.dumps({"id": command_id, "args": args}), qos=1)
    [result] = await results(api, 1, timeout=15)
    assert result["id"] == command_id
    return result


async def test_status_becomes_the_upstream_topic_tree(mqtt_settings: MqttSettings, saic_server: SaicTestServer) -> None:
    vehicle = saic_server.fleet.vehicle(VIN)
    async with running_saic_gateway(mqtt_settings, saic_server), client(mqtt_settings, "api") as api:
        values = await retained_values(api, root(saic_server), 200)
    vehicle_paths = [p for p in saic_server.paths() if not p.startswith("/message/")]  # the account's, in parallel
    assert vehicle_paths[:3] == ["/oauth/token", "/vehicle/list", "/vehicle/status"]
    assert "/vehicle/charging/mgmtData" in saic_server.paths()
    assert saic_server.signature_failures == 0
    # Raw units scaled as upstream does: SoC /10, mileage /10, position /1e6, tyres x0.04, booleans True/False.
    assert abs(float(values["drivetrain/soc"]) - vehicle.soc) < 0.2
    assert abs(float(values["drivetrain/mileage"]) - vehicle.mileage_km) < 1
    assert abs(float(values["location/latitude"]) - vehicle.latitude) < 0.01
    assert values["tyres/frontLeftPressure"] == b"2.64"
    assert values["doors/locked"] == (b"True" if vehicle.locked else b"False")
    assert values["climate/remoteClimateState"] == b"off"
    assert values["drivetrain/socTarget"] == str(vehicle.soc_target).encode()
    assert values["drivetrain/totalBatteryCapacity"] == str(vehicle.capacity_kwh).encode()
    assert values["bms/chargeStatus"] in (b"UNPLUGGED", b"CONNECTED_NOT_CHARGING", b"CHARGING_1")
    assert values["available"] == b"online"
    assert values["refresh/mode"] == b"periodic"
    assert values["refresh/pollingPhase"] in (b"active", b"afterShutdown", b"inactive")
    assert values["climate/remoteTemperature"] == b"22"  # upstream's default until set
    # The rest of upstream's tree for an EV (src/mqtt_topics.py, 0.9.7).
    for key in (
        "refresh/lastActivity",
        "refresh/lastChargeState",
        "refresh/period/error",
        "refresh/period/charging",
        "drivetrain/soc_kwh",
        "drivetrain/lastChargeEndingPower",
        "drivetrain/mileageOfTheDay",
        "drivetrain/mileageSinceLastCharge",
        "drivetrain/powerUsageOfDay",
        "drivetrain/powerUsageSinceLastCharge",
        "drivetrain/charging/lastStart",
        "drivetrain/chargingStopReason",
        "drivetrain/batteryHeatingStopReason",
        "drivetrain/hybrid_electrical_range",
        "obc/current",
        "obc/voltage",
        "ccu/onboardChargerPlugStatus",
        "ccu/offboardChargerPlugStatus",
    ):
        assert key in values, key
    assert "refresh/period/inActiveGrace" in values
    assert values["info/model"] == vehicle.info.model.upper().encode()  # as upstream: `MG4 ELECTRIC`
    assert values["info/configuration/HeatedSeat"] == b"1"
    assert abs(json.loads(values["location/position"])["latitude"] - vehicle.latitude) < 0.01


async def test_the_event_id_dance_is_followed(mqtt_settings: MqttSettings, saic_server: SaicTestServer) -> None:
    saic_server.event_id_rounds = 2
    async with running_saic_gateway(mqtt_settings, saic_server) as gateway:
        assert gateway.polls >= 2
    vin_hash = sha256_hex_digest(VIN)
    status_calls = [r for r in saic_server.requests if r.path.startswith(f"/vehicle/status?vin={vin_hash}")]
    ids = [r.event_id for r in status_calls[:3]]
    assert ids[0] == "0"
    assert ids[1] == ids[2] != "0"  # the server's event id, repeated until the car answers


CONTROL_CASES = [
    ("lock", {}, "/vehicle/control", {"rvcReqType": "1"}),
    ("unlock", {}, "/vehicle/control", {"rvcReqType": "2", 7: b"\x03"}),
    ("tailgate", {}, "/vehicle/control", {"rvcReqType": "2", 7: b"\x02"}),
    ("climate", {"action": "on", "temperature": 21}, "/vehicle/control", {"rvcReqType": "6", 19: b"\x02", 20: b"\x07"}),
    ("climate", {"action": "off"}, "/vehicle/control", {"rvcReqType": "6", 19: b"\x00"}),
    ("climate", {"action": "front"}, "/vehicle/control", {"rvcReqType": "6", 19: b"\x05"}),
    ("heated_seats", {"left": 2, "right": 1}, "/vehicle/control", {"rvcReqType": "5", 17: b"\x02", 18: b"\x01"}),
    ("rear_window_heat", {"action": "on"}, "/vehicle/control", {"rvcReqType": "32", 23: b"\x01"}),
    ("find_my_car", {"mode": "stop"}, "/vehicle/control", {"rvcReqType": "0", 1: b"\x00"}),
    ("find_my_car", {"mode": "lights_only"}, "/vehicle/control", {"rvcReqType": "0", 2: b"\x00", 3: b"\x01"}),
    ("target_soc", {"percent": 90}, "/vehicle/charging/setting", {"onBdChrgTrgtSOCReq": 6, "altngChrgCrntReq": 0}),
    ("charge_current_limit", {"limit": "16A"}, "/vehicle/charging/setting", {"altngChrgCrntReq": 3}),
    ("charging_cable_lock", {"action": "unlock"}, "/vehicle/charging/control", {"tboxEleccLckCtrlReq": 2}),
    (
        "charging_schedule",
        {"mode": "until_configured_time", "start_time": "01:30", "end_time": "06:00"},
        "/vehicle/charging/reservation",
        {"tboxReserCtrlReq": 1, "rsvanStHour": 1, "rsvanStMintue": 30, "rsvanSpHour": 6, "rsvanSpMintue": 0},
    ),
    ("battery_heating", {"action": "on"}, "/vehicle/charging/ptcHeat", {"ptcHeatReq": 1}),
    ("battery_heating_schedule", {"mode": "off"}, "/charging/batteryHeating", {"status": 0}),
]


@pytest.mark.parametrize(("name", "args", "path", "expected"), CONTROL_CASES, ids=lambda v: str(v)[:30])
async def test_each_command_sends_the_right_request(
    mqtt_settings: MqttSettings,
    saic_server: SaicTestServer,
    name: str,
    args: dict[str, Any],
    path: str,
    expected: dict[str | int, object],
) -> None:
    async with running_saic_gateway(mqtt_settings, saic_server), client(mqtt_settings, "api") as api:
        result = await command(api, saic_server, name, args)
        polls_before = len(saic_server.paths())
        await wait_until(lambda: len(saic_server.paths()) > polls_before, what="the forced poll after the command")
    assert result["status"] == "succeeded", result
    [request] = [r for r in saic_server.requests if r.method == "POST" and r.path.startswith(path)][-1:]
    assert request.body is not None
    params = {p["paramId"]: base64.b64decode(p["paramValue"]) for p in request.body.get("rvcParams") or []}
    for key, value in expected.items():
        assert (params[key] if isinstance(key, int) else request.body[key]) == value, (key, request.body)
    assert len(request.body["vin"]) == 64  # the VIN travels as its SHA-256


async def test_a_refused_command_fails_with_the_cars_reason(
    mqtt_settings: MqttSettings, saic_server: SaicTestServer
) -> None:
    vehicle = saic_server.fleet.vehicle(VIN)
    vehicle.phase, vehicle.phase_ends_at, vehicle.charger_connected = Phase.PARKED, math.inf, False
    async with running_saic_gateway(mqtt_settings, saic_server), client(mqtt_settings, "api") as api:
        result = await command(api, saic_server, "charging", {"action": "start"})
    assert result["status"] == "failed"
    assert "no charging cable is connected" in result["error"]


async def test_bad_arguments_are_rejected_without_an_api_call(
    mqtt_settings: MqttSettings, saic_server: SaicTestServer
) -> None:
    async with running_saic_gateway(mqtt_settings, saic_server), client(mqtt_settings, "api") as api:
        result = await command(api, saic_server, "target_soc", {"percent": 45})
    assert result["status"] == "rejected"
    assert "percent" in result["error"]
    assert saic_server.paths("POST") == ["/oauth/token"]


@pytest.mark.parametrize("code", [4, 8])
async def test_remote_control_failure_codes_fail_the_command(
    mqtt_settings: MqttSettings, saic_server: SaicTestServer, code: int
) -> None:
    saic_server.faults.append(Fault("code", path="/vehicle/control", code=code))
    async with running_saic_gateway(mqtt_settings, saic_server) as gateway, client(mqtt_settings, "api") as api:
        result = await command(api, saic_server, "lock", {})
        assert gateway.metrics.api_calls.labels("lock", "refused")._value.get() == 1
    assert result["status"] == "failed"
    assert f"return code: {code}" in result["error"]
    assert "remote control instruction failed" in result["error"]


async def test_background_polling_logs_in_again_after_the_delay(
    mqtt_settings: MqttSettings, saic_server: SaicTestServer
) -> None:
    async with running_saic_gateway(mqtt_settings, saic_server, SAIC_RELOGIN_DELAY="1") as gateway:
        logged_out_at = time.monotonic()
        saic_server.faults.append(Fault("logout", path="/vehicle/status"))
        await wait_until(lambda: saic_server.logins >= 2, what="a second login")
        relogin_after = time.monotonic() - logged_out_at
        polls = gateway.polls
        await wait_until(lambda: gateway.polls > polls + 2, what="polling resumed")
    assert relogin_after >= 1.0  # the delay that keeps the gateway from kicking out the app user
    assert gateway.metrics.logins.labels("ok")._value.get() == 2


async def test_a_command_logs_in_again_at_once(mqtt_settings: MqttSettings, saic_server: SaicTestServer) -> None:
    async with (
        running_saic_gateway(
            mqtt_settings, saic_server, SAIC_RELOGIN_DELAY="60", GATEWAY_POLL_INTERVAL="60"
        ) as gateway,
        client(mqtt_settings, "api") as api,
    ):
        saic_server.log_everyone_out()  # the owner opened the official app
        started = time.monotonic()
        result = await command(api, saic_server, "lock", {})
        took = time.monotonic() - started
    assert result["status"] == "succeeded"
    assert took < 10  # far below the 60 s background delay
    assert saic_server.logins == 2
    assert gateway.metrics.logins.labels("ok")._value.get() == 2


async def test_a_logout_in_the_middle_of_a_command_is_retried_once(
    mqtt_settings: MqttSettings, saic_server: SaicTestServer
) -> None:
    saic_server.faults.append(Fault("logout", path="/vehicle/control"))
    async with running_saic_gateway(mqtt_settings, saic_server), client(mqtt_settings, "api") as api:
        result = await command(api, saic_server, "unlock", {})
    assert result["status"] == "succeeded"
    assert len([p for p in saic_server.paths("POST") if p == "/vehicle/control"]) == 2
    assert saic_server.fleet.vehicle(VIN).locked is False


async def test_server_errors_back_off_and_recover(mqtt_settings: MqttSettings, saic_server: SaicTestServer) -> None:
    async with (
        running_saic_gateway(mqtt_settings, saic_server, SAIC_BREAKER_THRESHOLD="100") as gateway,
        client(mqtt_settings, "api") as api,
    ):
        saic_server.faults.append(Fault("http", path="/vehicle/status", code=502, times=4))
        await wait_until(lambda: gateway.refresh[VIN].failures >= 2, what="two failed polls")
        assert gateway.refresh[VIN].interval(time.monotonic()) > 0.3  # backing off
        await api.subscribe([(f"{root(saic_server)}/available", 1), (f"{root(saic_server)}/refresh/lastError", 1)])
        values = {m.topic.value.rsplit("/", 1)[-1]: m.payload for m in await collect(api, 2, timeout=3)}
        assert values["available"] == b"offline"
        assert "lastError" in values
        await wait_until(lambda: gateway.refresh[VIN].failures == 0, timeout=15, what="recovery")
    assert gateway.metrics.api_calls.labels("vehicle_status", "api_failure")._value.get() >= 2


async def test_a_slow_api_times_out_and_polling_goes_on(
    mqtt_settings: MqttSettings, saic_server: SaicTestServer
) -> None:
    async with running_saic_gateway(mqtt_settings, saic_server, SAIC_READ_TIMEOUT="0.5") as gateway:
        saic_server.faults.append(Fault("slow", path="/vehicle/status", delay=1.0, times=2))
        await wait_until(lambda: gateway.metrics.polls.labels("failed")._value.get() >= 1, what="a timed-out poll")
        await wait_until(lambda: gateway.refresh[VIN].failures == 0, timeout=15, what="recovery")
        # A slow answer within the timeout is only slow.
        failed = gateway.metrics.polls.labels("failed")._value.get()
        saic_server.faults.append(Fault("slow", path="/vehicle/status", delay=0.2, times=2))
        polls = gateway.polls
        await wait_until(lambda: gateway.polls >= polls + 4, what="more polls")
    assert gateway.metrics.polls.labels("failed")._value.get() == failed


async def test_the_circuit_breaker_stops_calls_to_a_sick_api(
    mqtt_settings: MqttSettings, saic_server: SaicTestServer
) -> None:
    async with (
        running_saic_gateway(
            mqtt_settings, saic_server, SAIC_BREAKER_THRESHOLD="3", SAIC_BREAKER_COOLDOWN="30"
        ) as gateway,
        client(mqtt_settings, "api") as api,
    ):
        saic_server.faults.append(Fault("http", path="/", code=503, times=1000))
        await wait_until(lambda: gateway.metrics.circuit_open._value.get() == 1, what="the breaker to open")
        calls = len(saic_server.requests)
        result = await command(api, saic_server, "lock", {})
        assert len(saic_server.requests) == calls  # nothing reached the API while it is open
    assert result["status"] == "failed"
    assert "suspended" in result["error"]
    text = generate_latest(gateway.metrics.registry).decode()
    assert 'saic_api_calls_total{operation="lock",outcome="circuit_open"} 1.0' in text
    assert "saic_circuit_open 1.0" in text


async def test_a_wrong_password_is_retried_with_backoff_not_hammered(
    mqtt_settings: MqttSettings, saic_server: SaicTestServer
) -> None:
    async with running_saic_gateway(
        mqtt_settings, saic_server, wait_for_polls=False, SAIC_PWD="an old password"
    ) as gateway:
        await wait_until(lambda: gateway.metrics.logins.labels("failed")._value.get() >= 1, what="a failed login")
        await wait_until(gateway.mqtt.connected.is_set, what="the gateway stays up")
    assert saic_server.logins == 0
    assert len(saic_server.paths()) <= 2  # the vehicle list is retried after 5 s, then 10 s


async def test_a_polling_cycle_over_the_whole_fleet(mqtt_settings: MqttSettings) -> None:
    server = SaicTestServer(SimulatedFleet(40, seed=3, command_latency=0))
    await server.start()
    every_soc = {topics.VehicleTopics("saic", server.username, vin(n)).key(topics.DRIVETRAIN_SOC) for n in range(1, 41)}
    try:
        async with (
            running_saic_gateway(mqtt_settings, server, GATEWAY_POLL_INTERVAL="2") as gateway,
            client(mqtt_settings, "api") as api,
        ):
            await api.subscribe(topics.vehicles_filter("saic", topics.DRIVETRAIN_SOC, server.username), qos=1)
            # By topic, not by count: a car's SoC can come twice (its retained copy, then a poll).
            received = await latest_on(api, every_soc)
            assert gateway.metrics.polls.labels("failed")._value.get() == 0
    finally:
        await server.stop()
    assert received.keys() == every_soc
    assert server.signature_failures == 0


async def test_a_slow_charging_call_still_gives_the_first_reading_its_soc(
    private_mqtt: MqttSettings, saic_server: SaicTestServer, db_settings: DatabaseSettings
) -> None:
    """Upstream publishes a reading's time right after the status call and its SoC seconds later,
    after the charging call; a flush in between stored the first reading without SoC. This gateway
    publishes a reading once both calls are in, and the ingest completes a row a late value belongs to."""
    saic_server.faults.append(Fault("slow", path="/vehicle/charging/mgmtData", delay=2.0, times=2))
    async with (
        running_ingest(private_mqtt, db_settings, flush_interval=0.2),
        running_saic_gateway(private_mqtt, saic_server, wait_for_polls=False),
    ):

        async def first_rows() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(db_settings.url.get_secret_value())
            try:
                return await conn.fetch("SELECT DISTINCT ON (vin) vin, soc FROM vehicle_telemetry ORDER BY vin, ts")
            finally:
                await conn.close()

        async def both_cars_stored() -> bool:
            return len(await first_rows()) == 2

        await wait_until(both_cars_stored, timeout=20, what="a first reading of each car")
    assert all(row["soc"] is not None for row in await first_rows())


async def test_a_car_is_not_polled_once_its_daily_calls_are_spent(
    mqtt_settings: MqttSettings, saic_server: SaicTestServer
) -> None:
    """SAIC refuses an account for the rest of the day after too many requests (upstream #250): the
    gateway counts each car's calls, alerts at 80 % of its budget and stops polling it at 100 %, and
    a user's command still goes through."""
    vin_hash = sha256_hex_digest(VIN)

    def requests_for_the_car() -> int:
        return sum(1 for r in saic_server.requests if vin_hash in r.path or (r.body or {}).get("vin") == vin_hash)

    async with (
        running_saic_gateway(mqtt_settings, saic_server, GATEWAY_DAILY_CALL_BUDGET="6") as gateway,
        client(mqtt_settings, "api") as api,
    ):
        await wait_until(lambda: gateway.source.calls_today(VIN) >= 6, what="the budget spent")
        await api.subscribe(f"{root(saic_server)}/{topics.REFRESH_POLLING_PHASE}", qos=1)

        async def phase_is_spent() -> bool:
            return any(m.payload == b"callBudgetSpent" for m in await collect(api, 1, timeout=0.5))

        await wait_until(phase_is_spent, what="refresh/pollingPhase = callBudgetSpent")
        spent = requests_for_the_car()
        await asyncio.sleep(1.5)  # five polling periods
        assert requests_for_the_car() == spent, "a car whose calls are spent is not polled"
        assert f"call-budget:{VIN}" in gateway.alerts.active
        assert gateway.metrics.registry.get_sample_value("gateway_vehicles_call_budget_spent") == 2
        result = await command(api, saic_server, "lock", {})
    assert result["status"] == "succeeded"


async def test_the_message_list_is_read_as_upstream(mqtt_settings: MqttSettings, saic_server: SaicTestServer) -> None:
    older = saic_server.add_message(VIN, at=time.time() - 7200)
    saic_server.add_message(VIN, message_type="601", title="Charging finished", at=time.time() - 3600)
    async with running_saic_gateway(
        mqtt_settings, saic_server, GATEWAY_MESSAGE_INTERVAL="0.2", GATEWAY_POLL_INTERVAL="3600"
    ) as gateway:
        assert gateway.polls == 2  # each car once; the next in an hour
        latest = saic_server.add_message(VIN)  # the car was started just now
        await wait_until(lambda: all(m["readStatus"] == 1 for m in saic_server.messages), what="messages read")
        await wait_until(lambda: older not in saic_server.messages, what="an old vehicle start deleted")
        async with client(mqtt_settings, "api") as api:
            values = await retained_values(api, f"{root(saic_server)}/info/lastMessage", 8)
        # The start message makes the car active: it is polled at once, not at its hour-long period.
        await wait_until(lambda: gateway.polls >= 3, what="a poll for the started car")
        events = [e["message"] for e in gateway.alerts.recent if e["state"] == "event"]
    assert values["messageId"] == str(latest["messageId"]).encode()
    assert values["messageType"] == b"323"
    assert values["title"] == b"Vehicle start"
    assert values["vin"] == VIN.encode()
    assert values["status"] == b"unread"  # as it arrived; the gateway then marked it read
    assert len(events) == 3  # the console's event list, oldest first
    assert "Charging finished" in events[1]
    assert latest in saic_server.messages  # the latest vehicle start is kept, as upstream


def schedule_reads(server: SaicTestServer) -> int:
    return server.paths("GET").count("/charging/batteryHeating")


async def test_the_battery_heating_schedule_is_read_first_then_after_a_command_that_sets_it(
    mqtt_settings: MqttSettings, saic_server: SaicTestServer
) -> None:
    saic_server.fleet.vehicle(VIN).battery_heating_start = "06:45"
    async with (
        running_saic_gateway(mqtt_settings, saic_server, SAIC_SCHEDULE_REFRESH="3600") as gateway,
        client(mqtt_settings, "api") as api,
        client(mqtt_settings, "api") as watcher,
    ):
        values = await retained_values(watcher, f"{root(saic_server)}/drivetrain", 40)
        polls = gateway.polls
        await wait_until(lambda: gateway.polls >= polls + 6, what="three more polls of each car")
        reads_while_unchanged = schedule_reads(saic_server)
        result = await command(api, saic_server, "battery_heating_schedule", {"mode": "off"})
        await wait_until(lambda: schedule_reads(saic_server) > reads_while_unchanged, what="the schedule read again")
        topic = f"{root(saic_server)}/drivetrain/batteryHeatingSchedule"
        after = (await latest_on(watcher, {topic}, live_only=True))[topic]
    assert json.loads(values["batteryHeatingSchedule"]) == {"mode": "on", "startTime": "06:45"}
    assert reads_while_unchanged == 2  # one per car, on its first poll
    assert result["status"] == "succeeded", result
    assert json.loads(after) == {"mode": "off", "startTime": "06:45"}


async def test_the_battery_heating_schedule_is_read_on_each_poll_as_upstream_with_refresh_0(
    mqtt_settings: MqttSettings, saic_server: SaicTestServer
) -> None:
    async with running_saic_gateway(mqtt_settings, saic_server, SAIC_SCHEDULE_REFRESH="0") as gateway:
        polls = gateway.polls
        await wait_until(lambda: gateway.polls >= polls + 4, what="two more polls of each car")
    assert schedule_reads(saic_server) >= polls + 4


async def test_a_parked_car_is_watched_without_being_woken(
    mqtt_settings: MqttSettings, saic_server: SaicTestServer
) -> None:
    """battery-safe: an inactive car is polled once a day, and in between only SAIC's stored status is
    read (it does not wake the car). When that shows the car was in contact since, it is polled."""
    for car in (saic_server.fleet.vehicle(VIN), saic_server.fleet.vehicle("LSJTEST0000000002")):
        car.phase, car.phase_ends_at, car.charger_connected = Phase.PARKED, math.inf, False
        car.climate_mode = "off"
    async with running_saic_gateway(
        mqtt_settings,
        saic_server,
        GATEWAY_POLLING_PROFILE="battery-safe",
        GATEWAY_POLL_INTERVAL="",  # the profile's periods, but for these two
        GATEWAY_POLL_INTERVAL_INACTIVE="3600",
        GATEWAY_SLEEP_GRACE="0",
        GATEWAY_ACTIVITY_CHECK_INTERVAL="0.1",
    ) as gateway:
        await wait_until(lambda: saic_server.paths().count("/vehicle/status/cache") >= 6, what="stored status read")
        status_calls = saic_server.paths().count("/vehicle/status")
        assert status_calls == 2  # the first poll of each car, nothing since: neither was woken
        assert gateway.refresh[VIN].phase(time.monotonic()).value == "inactive"
        saic_server.contacts[VIN] = int(time.time()) + 120  # the owner drove it: SAIC heard from it
        await wait_until(lambda: saic_server.paths().count("/vehicle/status") > status_calls, what="a poll")
    assert gateway.polls == 3
