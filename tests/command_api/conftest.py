"""An API with every kind of authentication configured, over real HTTP, on a real PostgreSQL and
broker: Supabase HS256 tokens, asymmetric tokens from a JWKS URL served here over HTTP, and a
hashed API key. Two users, each given one vehicle in `user_vehicles`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from multidict import CIMultiDictProxy

from command_api.app import create_app
from command_api.routes import MQTT
from command_api.settings import ApiSettings
from common import topics
from common.database import apply_migrations, create_pool
from common.settings import DatabaseSettings, MqttSettings
from local_stack.ports import free_port
from tests.gateway.test_gateway import ACCOUNT, running_gateway, vin
from tests.helpers import serving, wait_until
from tests.ingest.test_ingest import running_ingest

JWT_SECRET = "test-jwt-secret-0123456789abcdef-32"
SERVICE_KEY = "svc-key-0123456789abcdef"
ALICE, BOB = uuid.UUID(int=0xA11CE), uuid.UUID(int=0xB0B)
VIN_A, VIN_B = "LSJALPHA000000001", "LSJBETA0000000002"
EC_KEY = ec.generate_private_key(ec.SECP256R1())
KID = "test-key-1"


def user_token(
    user: uuid.UUID, *, secret: str = JWT_SECRET, expires_in: int = 3600, audience: str = "authenticated"
) -> str:
    claims = {"sub": str(user), "aud": audience, "role": "authenticated", "exp": int(time.time()) + expires_in}
    return jwt.encode(claims, secret, algorithm="HS256")


def asymmetric_token(user: uuid.UUID) -> str:
    claims = {"sub": str(user), "aud": "authenticated", "exp": int(time.time()) + 3600}
    return jwt.encode(claims, EC_KEY, algorithm="ES256", headers={"kid": KID})


@dataclass
class Client:
    base: str
    http: aiohttp.ClientSession
    settings: ApiSettings
    app: web.Application

    async def call(
        self, method: str, path: str, *, token: str | None = None, key: str | None = None, **kwargs: Any
    ) -> tuple[int, Any, CIMultiDictProxy[str]]:
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if key:
            headers["X-API-Key"] = key
        async with self.http.request(method, self.base + path, headers=headers, **kwargs) as response:
            body = await response.json() if response.content_type == "application/json" else await response.text()
            return response.status, body, response.headers


@contextlib.asynccontextmanager
async def jwks_server() -> AsyncIterator[str]:
    """The project's signing keys at a JWKS URL, as Supabase publishes them."""
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key()))
    body = {"keys": [{**public, "kid": KID, "alg": "ES256", "use": "sig"}]}

    async def keys(_request: web.Request) -> web.Response:
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/auth/v1/.well-known/jwks.json", keys)
    async with serving(app) as base:
        yield f"{base}/auth/v1/.well-known/jwks.json"


async def seed(db: DatabaseSettings) -> None:
    pool = await create_pool(db)
    try:
        await apply_migrations(pool)
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO vehicles (vin, account, model) VALUES ($1, 'acct', 'MG4'), ($2, 'acct', 'ZS EV')",
                VIN_A,
                VIN_B,
            )
            await conn.execute(
                "INSERT INTO user_vehicles (user_id, vin) VALUES ($1, $2), ($3, $4)", ALICE, VIN_A, BOB, VIN_B
            )
    finally:
        await pool.close()


async def add_history(db: DatabaseSettings, vin: str, count: int, start: datetime) -> None:
    from datetime import timedelta

    conn = await asyncpg.connect(db.url.get_secret_value())
    try:
        await conn.executemany(
            "INSERT INTO vehicle_telemetry (vin, ts, soc, payload) VALUES ($1, $2, $3, $4)",
            [(vin, start + timedelta(minutes=i), float(i), json.dumps({"drivetrain/soc": i})) for i in range(count)],
        )
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def secured_api(mqtt: MqttSettings, db: DatabaseSettings, **env: str) -> AsyncIterator[Client]:
    async with jwks_server() as jwks_url:
        port = free_port()
        settings = ApiSettings.from_env(
            {
                "PORT": str(port),
                "API_PROFILE": "production",
                "SUPABASE_JWT_SECRET": JWT_SECRET,
                "SUPABASE_JWKS_URL": jwks_url,
                "COMMAND_API_KEYS": f"ops:{hashlib.sha256(SERVICE_KEY.encode()).hexdigest()}",
                "COMMAND_TIMEOUT": "5",
                **env,
            }
        )
        app = create_app(settings, mqtt, db)
        async with serving(app, port) as base, aiohttp.ClientSession() as http:
            await app[MQTT].wait_connected(10)
            yield Client(base, http, settings, app)


AUDIT_VIN = "LSJWR1TER00000001"


@pytest.fixture
async def pool(db_settings: DatabaseSettings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh, migrated database with one vehicle (AUDIT_VIN, account `acct`) to audit commands of."""
    pool = await create_pool(db_settings)
    await apply_migrations(pool)
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO vehicles (vin, account) VALUES ($1, 'acct')", AUDIT_VIN)
    yield pool
    await pool.close()


@pytest.fixture
async def seeded(db_settings: DatabaseSettings) -> DatabaseSettings:
    await seed(db_settings)
    await add_history(db_settings, VIN_A, 25, datetime(2026, 5, 1, tzinfo=UTC))
    return db_settings


@pytest.fixture
async def api(mqtt_settings: MqttSettings, seeded: DatabaseSettings) -> AsyncIterator[Client]:
    async with secured_api(mqtt_settings, seeded) as client:
        yield client


# -- the whole stack: gateway (simulated cars), ingest and the API with one plain key ----------

API_KEY = "test-api-key-0123456789"
GATEWAY_ACCOUNT = topics.account_segment(ACCOUNT)


@dataclass
class Api:
    base: str
    http: aiohttp.ClientSession
    app: web.Application

    async def call(self, method: str, path: str, *, key: str | None = API_KEY, **kwargs: Any) -> tuple[int, Any]:
        headers = {"X-API-Key": key} if key else {}
        async with self.http.request(method, self.base + path, headers=headers, **kwargs) as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()


@contextlib.asynccontextmanager
async def running_api(mqtt: MqttSettings, db: DatabaseSettings, timeout: float = 5) -> AsyncIterator[Api]:
    port = free_port()
    settings = ApiSettings.from_env({"PORT": str(port), "COMMAND_API_KEY": API_KEY, "COMMAND_TIMEOUT": str(timeout)})
    app = create_app(settings, mqtt, db)
    async with serving(app, port) as base, aiohttp.ClientSession() as http:
        await app[MQTT].wait_connected(10)  # before that, commands get 503 broker_unavailable
        yield Api(base, http, app)


async def wait_on_gateway_account(api: Api, *vins: str) -> None:
    """Until the API has these cars, with state, on the test gateway's account. Commands go to the
    account the API has for a car, and other tests' gateways left the same VINs in the session's
    database under accounts of their own: a car merely known may not be this gateway's yet."""

    async def on_it() -> bool:
        status, body = await api.call("GET", "/api/vehicles")
        ours = {v["vin"] for v in body["vehicles"] if v["state"] is not None and v["account"] == GATEWAY_ACCOUNT}
        return status == 200 and set(vins) <= ours

    await wait_until(on_it, what=f"{', '.join(vins)} in the API, on this gateway's account")


@pytest.fixture
async def stack(mqtt_settings: MqttSettings, db_settings: DatabaseSettings) -> AsyncIterator[Api]:
    async with (
        running_ingest(mqtt_settings, db_settings),
        running_gateway(mqtt_settings, vehicles=2),
        running_api(mqtt_settings, db_settings) as api,
    ):
        await wait_on_gateway_account(api, vin(1), vin(2))
        yield api
