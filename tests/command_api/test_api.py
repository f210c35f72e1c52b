"""The command API over real HTTP, with the real gateway, ingest, broker and PostgreSQL behind it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from command_api.routes import COMMANDS
from command_api.status import Presence, StatusBoard
from common.settings import DatabaseSettings, MqttSettings
from gateway.simulator import SimulatedFleet
from local_stack.ports import free_port
from tests.command_api.conftest import API_KEY, Api, running_api, wait_on_gateway_account
from tests.gateway.test_gateway import running_gateway, vin
from tests.helpers import wait_until
from tests.ingest.test_ingest import running_ingest


async def test_health_reports_every_component(stack: Api) -> None:
    async def healthy() -> bool:
        return (await stack.call("GET", "/api/health", key=None))[0] == 200

    await wait_until(healthy, what="healthy")
    async with stack.http.get(stack.base + "/api/health") as response:
        body = await response.json()
        assert response.headers["Cache-Control"] == "no-store"
    assert {c: v["status"] for c, v in body["components"].items()} == dict.fromkeys(
        ("api", "broker", "database", "gateway", "ingest"), "ok"
    )


async def test_vehicles_and_their_state(stack: Api) -> None:
    status, body = await stack.call("GET", "/api/vehicles")
    assert status == 200
    ours = [v["vin"] for v in body["vehicles"] if v["vin"] in (vin(1), vin(2))]  # others' retained cars may be there
    assert ours == [vin(1), vin(2)]
    one: dict[str, Any] = {}

    async def with_info() -> bool:
        # info/... is published once at start, beside the first reading: the state has it a flush later.
        nonlocal one
        status, one = await stack.call("GET", f"/api/vehicles/{vin(1)}")
        return status == 200 and "info" in one["state"]["values"]

    await wait_until(with_info, what="the vehicle's info in its state")
    assert 0 <= one["state"]["soc"] <= 100
    assert one["state"]["values"]["drivetrain"]["soc"] == one["state"]["soc"]
    assert one["state"]["values"]["info"]["brand"] == "MG"


async def test_lock_round_trip_and_audit_trail(stack: Api, db_settings: DatabaseSettings) -> None:
    status, body = await stack.call("POST", f"/api/vehicles/{vin(2)}/commands/lock")
    if status == 202:  # not answered within the wait (a loaded machine): it must still finish
        command = f"/api/commands/{body['id']}"

        async def finished() -> bool:
            nonlocal body
            body = (await stack.call("GET", command))[1]
            return body["status"] not in ("queued", "sent", "running")

        await wait_until(finished, timeout=15, what=f"the lock to finish (202: {body})")
    assert body["status"] == "succeeded", body
    conn = await asyncpg.connect(db_settings.url.get_secret_value())
    try:
        row = await conn.fetchrow("SELECT * FROM commands WHERE id = $1", uuid.UUID(body["id"]))
    finally:
        await conn.close()
    assert row is not None
    assert (row["vin"], row["command"], row["status"], row["requested_by"]) == (
        vin(2),
        "lock",
        "succeeded",
        "api-key:default",
    )


async def test_failed_command_is_reported(stack: Api) -> None:
    status, body = await stack.call("POST", f"/api/vehicles/{vin(1)}/commands/charging", json={"action": "stop"})
    assert status == 200
    assert body["status"] in ("failed", "succeeded")  # depends on whether the simulated car is charging
    if body["status"] == "failed":
        assert body["error"]


@pytest.mark.parametrize(
    ("path", "key", "body", "status", "code"),
    [
        ("/api/vehicles/{vin}/commands/lock", None, None, 401, "unauthorized"),
        ("/api/vehicles/{vin}/commands/lock", "wrong-key", None, 401, "invalid_api_key"),
        ("/api/vehicles/{vin}/commands/self_destruct", API_KEY, None, 404, "unknown_command"),
        ("/api/vehicles/LSJTEST9999999999/commands/lock", API_KEY, None, 404, "unknown_vehicle"),
        ("/api/vehicles/NOSUCHVIN/commands/lock", API_KEY, None, 400, "invalid_vin"),
        ("/api/vehicles/{vin}/commands/climate", API_KEY, {"action": "boil"}, 400, "invalid_arguments"),
        ("/api/vehicles/{vin}/commands/climate", API_KEY, b"{oops", 400, "invalid_json"),
        ("/api/vehicles/{vin}/commands/climate", API_KEY, [1, 2], 400, "invalid_json"),
        ("/api/nothing-here", API_KEY, None, 404, "not_found"),
    ],
)
async def test_bad_requests_get_clear_errors(
    stack: Api, path: str, key: str | None, body: object, status: int, code: str
) -> None:
    kwargs: dict[str, object] = {"data": body} if isinstance(body, bytes) else {"json": body} if body else {}
    got_status, got = await stack.call("POST", path.format(vin=vin(1)), key=key, **kwargs)
    assert (got_status, got["error"]["code"]) == (status, code)
    assert got["error"]["message"]


async def test_unknown_vehicle_state_is_404_and_a_malformed_vin_400(stack: Api) -> None:
    status, body = await stack.call("GET", "/api/vehicles/LSJTEST9999999999")
    assert (status, body["error"]["code"]) == (404, "unknown_vehicle")
    for junk in ("NOSUCHVIN", "lsjtest0000000001", "LSJSIM00000000001", "X" * 64):
        status, body = await stack.call("GET", f"/api/vehicles/{junk}")
        assert (status, body["error"]["code"]) == (400, "invalid_vin"), junk
        assert "not a VIN" in body["error"]["message"]


async def test_no_answer_is_202_then_expired(mqtt_settings: MqttSettings, db_settings: DatabaseSettings) -> None:
    async with running_ingest(mqtt_settings, db_settings):
        async with running_gateway(mqtt_settings, vehicles=1):
            pass  # the vehicle is now known, and its gateway is gone
        async with running_api(mqtt_settings, db_settings, timeout=0.5) as api:
            await wait_on_gateway_account(api, vin(1))
            status, body = await api.call("POST", f"/api/vehicles/{vin(1)}/commands/lock")
            assert (status, body["status"]) == (202, "sent")
            assert not api.app[COMMANDS].relay.waits_for(uuid.UUID(body["id"]))  # no one waits: nothing kept

            async def expired() -> bool:
                _, now = await api.call("GET", f"/api/commands/{body['id']}")
                return bool(now["status"] == "expired")

            await wait_until(expired, timeout=15, what="the unanswered command marked expired")


async def test_a_command_the_car_has_started_is_running_not_expired(
    mqtt_settings: MqttSettings, db_settings: DatabaseSettings
) -> None:
    """The acceptance run's case: the API's clock ran out while the car was still on it, the caller
    was told `expired`, and the car then unlocked. Now the caller is told `running`, then the outcome."""
    async with (
        running_ingest(mqtt_settings, db_settings),
        running_gateway(mqtt_settings, vehicles=1, command_latency=2.5) as gateway,
        running_api(mqtt_settings, db_settings, timeout=1.5) as api,
    ):
        fleet = gateway.source
        assert isinstance(fleet, SimulatedFleet)
        fleet.vehicle(vin(1)).locked = True
        await wait_on_gateway_account(api, vin(1))
        status, body = await api.call("POST", f"/api/vehicles/{vin(1)}/commands/unlock?wait=1.5")
        assert (status, body["status"]) == (202, "running")
        assert body["answer_by"] is not None
        seen = set()

        async def finished() -> bool:
            _, now = await api.call("GET", f"/api/commands/{body['id']}")
            seen.add(now["status"])
            return bool(now["finished_at"])

        await wait_until(finished, timeout=15, what="the outcome recorded")
        _, final = await api.call("GET", f"/api/commands/{body['id']}")
    assert (final["status"], fleet.vehicle(vin(1)).locked) == ("succeeded", False)
    assert "expired" not in seen


async def test_one_instance_stopping_leaves_its_component_up(
    mqtt_settings: MqttSettings, db_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The acceptance run stopped a second gateway: the shared last-will topic said `offline`, and
    health reported the gateway down for minutes while the first one worked."""

    async def gateway_health() -> dict[str, Any]:
        _, body = await api.call("GET", "/api/health", key=None)
        return dict(body["components"]["gateway"])

    async with running_ingest(mqtt_settings, db_settings), running_api(mqtt_settings, db_settings) as api:
        monkeypatch.setenv("INSTANCE_ID", "gateway-one")
        async with running_gateway(mqtt_settings, vehicles=1):
            monkeypatch.setenv("INSTANCE_ID", "gateway-two")
            async with running_gateway(mqtt_settings, vehicles=1):

                async def both_up() -> bool:
                    return set((await gateway_health()).get("instances", {})) == {"gateway-one", "gateway-two"}

                await wait_until(both_up, what="both instances reported")

            async def one_left() -> bool:
                return set((await gateway_health()).get("instances", {})) == {"gateway-one"}

            await wait_until(one_left, what="the stopped instance gone from the report")
            assert (await gateway_health())["status"] == "ok"

        async def down() -> bool:
            return bool((await gateway_health())["status"] == "down")

        await wait_until(down, what="the gateway down once no instance is left")


def test_an_instance_that_goes_silent_is_stale() -> None:
    board = StatusBoard("saic")
    now = datetime.now(UTC)
    board.instances["ingest"] = {
        "crashed": Presence(now - timedelta(seconds=31), 10),
        "long-gone": Presence(now - timedelta(hours=2), 10),
    }
    view = board.view(now)["ingest"]
    assert (view["status"], view["instances"]) == (
        "down",
        {"crashed": {"status": "stale", "seen": now - timedelta(seconds=31)}},
    )
    board.instances["ingest"]["alive"] = Presence(now - timedelta(seconds=5), 10)
    assert board.view(now)["ingest"]["status"] == "ok"


async def test_health_is_503_when_the_database_is_down(mqtt_settings: MqttSettings) -> None:
    dead = DatabaseSettings.from_env({"DATABASE_URL": f"postgresql://x:y@127.0.0.1:{free_port()}/none"})
    async with running_api(mqtt_settings, dead) as api:
        status, body = await api.call("GET", "/api/health", key=None)
        assert status == 503
        assert body["components"]["database"]["status"] == "down"
        status, body = await api.call("GET", "/api/vehicles")
        assert (status, body["error"]["code"]) == (503, "database_unavailable")
