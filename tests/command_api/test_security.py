"""The auth matrix, CORS, rate limits and the production profile, over real HTTP."""

from __future__ import annotations

import subprocess
import sys

import pytest

from command_api.app import create_app
from command_api.auth import AuthConfigError
from command_api.settings import ApiSettings
from common.settings import DatabaseSettings, MqttSettings
from tests.command_api.conftest import (
    ALICE,
    BOB,
    SERVICE_KEY,
    VIN_A,
    VIN_B,
    Client,
    asymmetric_token,
    secured_api,
    user_token,
)
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("credentials", "status", "code"),
    [
        ({}, 401, "unauthorized"),
        ({"token": "not.a.jwt"}, 401, "invalid_token"),
        ({"token": user_token(ALICE, secret="another-secret-0123456789abcdef-32")}, 401, "invalid_token"),
        ({"token": user_token(ALICE, expires_in=-60)}, 401, "token_expired"),
        ({"token": user_token(ALICE, audience="anon")}, 401, "invalid_token"),
        ({"key": "wrong-key-0123456789"}, 401, "invalid_api_key"),
    ],
    ids=["no-token", "garbage", "bad-signature", "expired", "wrong-audience", "bad-api-key"],
)
async def test_refused_credentials(api: Client, credentials: dict[str, str], status: int, code: str) -> None:
    got, body, _ = await api.call("GET", "/api/vehicles", **credentials)
    assert (got, body["error"]["code"]) == (status, code)
    assert body["error"]["message"]


async def test_a_user_reaches_only_the_vehicles_granted(api: Client) -> None:
    alice = user_token(ALICE)
    status, body, _ = await api.call("GET", "/api/vehicles", token=alice)
    assert (status, [v["vin"] for v in body["vehicles"]]) == (200, [VIN_A])
    assert (await api.call("GET", f"/api/vehicles/{VIN_A}", token=alice))[0] == 200
    for path in (f"/api/vehicles/{VIN_B}", f"/api/vehicles/{VIN_B}/telemetry", f"/api/vehicles/{VIN_B}/commands"):
        status, body, _ = await api.call("GET", path, token=alice)
        assert (status, body["error"]["code"]) == (403, "forbidden"), path
    status, body, _ = await api.call("POST", f"/api/vehicles/{VIN_B}/commands/lock", token=alice)
    assert (status, body["error"]["code"]) == (403, "forbidden")


async def test_asymmetric_tokens_from_the_jwks_url(api: Client) -> None:
    status, body, _ = await api.call("GET", "/api/vehicles", token=asymmetric_token(BOB))
    assert (status, [v["vin"] for v in body["vehicles"]]) == (200, [VIN_B])


async def test_an_api_key_reaches_every_vehicle(api: Client) -> None:
    status, body, _ = await api.call("GET", "/api/vehicles", key=SERVICE_KEY)
    assert (status, [v["vin"] for v in body["vehicles"]]) == (200, [VIN_A, VIN_B])
    status, _, _ = await api.call("GET", "/metrics", key=SERVICE_KEY)
    assert status == 200
    status, body, _ = await api.call("GET", "/metrics", token=user_token(ALICE))
    assert (status, body["error"]["code"]) == (403, "forbidden")


async def test_health_and_the_documents_stay_open(api: Client) -> None:
    assert (await api.call("GET", "/api/health"))[0] in (200, 503)
    status, spec, _ = await api.call("GET", "/api/openapi.json")
    assert (status, spec["openapi"]) == (200, "3.1.0")
    status, page, _ = await api.call("GET", "/api-docs")
    assert status == 200
    assert "/api/vehicles/{vin}/commands/lock" in page


async def test_cors_for_configured_origins(mqtt_settings: MqttSettings, seeded: DatabaseSettings) -> None:
    async with secured_api(mqtt_settings, seeded, CORS_ALLOWED_ORIGINS="https://app.example.com") as api:
        preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
        status, _, headers = await api.call("OPTIONS", "/api/vehicles/X/commands/lock", headers=preflight)
        assert status == 204
        assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert "Idempotency-Key" in headers["Access-Control-Allow-Headers"]
        status, body, _ = await api.call(
            "OPTIONS", "/api/vehicles", headers={**preflight, "Origin": "https://evil.example.com"}
        )
        assert (status, body["error"]["code"]) == (403, "origin_not_allowed")
        status, _, headers = await api.call(
            "GET", "/api/vehicles", token=user_token(ALICE), headers={"Origin": "https://app.example.com"}
        )
        assert (status, headers["Access-Control-Allow-Origin"]) == (200, "https://app.example.com")
        status, _, headers = await api.call(
            "GET", "/api/vehicles", token=user_token(ALICE), headers={"Origin": "https://evil.example.com"}
        )
        assert "Access-Control-Allow-Origin" not in headers


async def test_rate_limit_per_caller(mqtt_settings: MqttSettings, seeded: DatabaseSettings) -> None:
    async with secured_api(mqtt_settings, seeded, RATE_LIMIT_REQUESTS_PER_MINUTE="5") as api:
        alice = user_token(ALICE)
        statuses = [(await api.call("GET", "/api/vehicles", token=alice))[0] for _ in range(5)]
        status, body, headers = await api.call("GET", "/api/vehicles", token=alice)
        assert statuses == [200] * 5
        assert (status, body["error"]["code"]) == (429, "rate_limited")
        assert 1 <= int(headers["Retry-After"]) <= 60
        assert (await api.call("GET", "/api/vehicles", token=user_token(BOB)))[0] == 200  # per caller


async def test_rate_limit_per_vehicle_commands(mqtt_settings: MqttSettings, seeded: DatabaseSettings) -> None:
    env = {"RATE_LIMIT_VEHICLE_COMMANDS_PER_MINUTE": "2"}
    async with secured_api(mqtt_settings, seeded, **env) as api:
        for _ in range(2):  # no gateway behind: each is accepted (202) and expires later
            assert (await api.call("POST", f"/api/vehicles/{VIN_A}/commands/lock?wait=0", key=SERVICE_KEY))[0] == 202
        status, body, headers = await api.call("POST", f"/api/vehicles/{VIN_A}/commands/lock?wait=0", key=SERVICE_KEY)
        assert (status, body["error"]["code"]) == (429, "rate_limited")
        assert "Retry-After" in headers
        assert (await api.call("POST", f"/api/vehicles/{VIN_B}/commands/lock?wait=0", key=SERVICE_KEY))[0] == 202


def test_production_refuses_to_start_without_auth(mqtt_settings: MqttSettings, db_settings: DatabaseSettings) -> None:
    settings = ApiSettings.from_env({"API_PROFILE": "production"})
    with pytest.raises(AuthConfigError, match="SUPABASE_JWT_SECRET"):
        create_app(settings, mqtt_settings, db_settings)


def test_an_api_on_api_keys_loads_neither_pyjwt_nor_cryptography() -> None:
    """9 MiB of the API's memory (issue 12's idle goal) for JWTs and firmware signatures it is not
    configured for; this file's JWT tests and test_rollouts.py's signatures show they load on demand."""
    code = "import sys, command_api.__main__; print(sorted({'jwt', 'cryptography'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
