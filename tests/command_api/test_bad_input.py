"""Input the acceptance run answered with a 5xx: each is now a 4xx that says what was wrong."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from command_api.errors import error_middleware
from common.commands import COMMAND_ARGS
from tests.command_api.conftest import SERVICE_KEY, VIN_A, Client


@pytest.mark.parametrize("limit", ["²", "١٠", "1" * 5000, "-1", "0", "1e3"])
async def test_a_limit_that_is_not_ascii_digits_in_range_is_400(api: Client, limit: str) -> None:
    for path in (f"/api/vehicles/{VIN_A}/telemetry", f"/api/vehicles/{VIN_A}/commands"):
        status, body, _ = await api.call("GET", path, key=SERVICE_KEY, params={"limit": limit})
        assert (status, body["error"]["code"]) == (400, "invalid_parameter"), (path, limit, body)
    status, _body, _ = await api.call(
        "GET", f"/api/vehicles/{VIN_A}/telemetry", key=SERVICE_KEY, params={"limit": "10"}
    )
    assert status == 200


@pytest.mark.parametrize(
    ("name", "value"), [("from", "0001-01-01T00:00:00+05:00"), ("to", "9999-12-31T23:59:59-05:00")]
)
async def test_a_time_outside_the_calendar_in_utc_is_400(api: Client, name: str, value: str) -> None:
    status, body, _ = await api.call("GET", f"/api/vehicles/{VIN_A}/telemetry", key=SERVICE_KEY, params={name: value})
    assert (status, body["error"]["code"]) == (400, "invalid_parameter"), body


@pytest.mark.parametrize("raw", ["[" * 20_000, '{"percent": ' + "9" * 5_000 + "}"])
async def test_a_body_too_deep_or_a_number_too_long_is_400(api: Client, raw: str) -> None:
    status, body, _ = await api.call(
        "POST",
        f"/api/vehicles/{VIN_A}/commands/lock",
        key=SERVICE_KEY,
        data=raw,
        headers={"Content-Type": "application/json"},
    )
    assert (status, body["error"]["code"]) == (400, "invalid_json"), body


async def test_a_405_says_which_methods_are_allowed(api: Client) -> None:
    status, body, headers = await api.call("DELETE", "/api/vehicles", key=SERVICE_KEY)
    assert status == 405, body
    assert "GET" in headers["Allow"]


async def test_a_value_the_database_refuses_is_the_callers_400() -> None:
    async def refused(_request: web.Request) -> web.Response:
        raise asyncpg.DataError("date/time field value out of range")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/", refused)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/")
        body = await response.json()
    assert (response.status, body["error"]["code"]) == (400, "invalid_parameter")


async def test_the_spec_says_which_commands_take_an_empty_body(api: Client) -> None:
    """The spec called every body optional, yet an empty body was refused for commands with
    required arguments: now the spec marks those bodies required, and the others take no body."""
    status, spec, _ = await api.call("GET", "/api/openapi.json")
    assert status == 200
    for command in COMMAND_ARGS:
        operation = spec["paths"][f"/api/vehicles/{{vin}}/commands/{command}"]["post"]
        status, body, _ = await api.call(
            "POST", f"/api/vehicles/{VIN_A}/commands/{command}", key=SERVICE_KEY, params={"wait": "0"}
        )
        if operation["requestBody"]["required"]:
            assert (status, body["error"]["code"]) == (400, "invalid_arguments"), command
        else:
            assert status in (200, 202), (command, body)
