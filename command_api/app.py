"""Composition root of the command API: routes, the database pool and the MQTT connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiomqtt
import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from command_api import audit, vehicles
from command_api.auth import require_api_key
from command_api.commands import CommandRelay, CommandTimeout
from command_api.errors import ApiError, error_middleware
from command_api.metrics import ApiMetrics, ProgramMetrics
from command_api.settings import ApiSettings
from command_api.status import StatusBoard
from command_api.tracing import trace_middleware
from common.backoff import Backoff
from common.commands import COMMAND_ARGS, InvalidArguments, validate_args
from common.database import apply_migrations, create_pool
from common.mqtt import MqttConnection, MqttOptions
from common.settings import DatabaseSettings, MqttSettings

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", ApiSettings)
API_KEY = web.AppKey("api_key", str)
POOL = web.AppKey("pool", asyncpg.Pool)
SCHEMA_READY = web.AppKey("schema_ready", asyncio.Event)
MQTT = web.AppKey("mqtt", MqttConnection)
RELAY = web.AppKey("relay", CommandRelay)
STATUS = web.AppKey("status", StatusBoard)
METRICS = web.AppKey("metrics", ApiMetrics)
PROGRAM_METRICS = web.AppKey("program_metrics", ProgramMetrics)

VIN_PATTERN = "{vin:[A-Za-z0-9_-]{1,64}}"
HEALTH_DB_TIMEOUT = 2.0


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        body, status=status, headers=headers, dumps=lambda obj: json.dumps(obj, default=_json_default)
    )


# -- handlers -------------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    app = request.app
    components: dict[str, dict[str, Any]] = {
        "api": {"status": "ok"},
        "broker": {"status": "ok" if app[MQTT].connected.is_set() else "down"},
    }
    try:
        async with asyncio.timeout(HEALTH_DB_TIMEOUT), app[POOL].acquire() as conn:
            await conn.fetchval("SELECT 1")
        components["database"] = {"status": "ok" if app[SCHEMA_READY].is_set() else "migrating"}
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        components["database"] = {"status": "down", "error": str(exc) or type(exc).__name__}
    for name, status in app[STATUS].components.items():
        state = {"online": "ok", "offline": "down"}.get(status.state, status.state)
        components[name] = {"status": state, "since": status.since}
    healthy = all(c["status"] == "ok" for c in components.values())
    return json_response(
        {"status": "ok" if healthy else "degraded", "components": components},
        status=200 if healthy else 503,
        headers={"Cache-Control": "no-store"},
    )


async def list_vehicles(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        return json_response({"vehicles": await vehicles.list_vehicles(conn)})


async def get_vehicle(request: web.Request) -> web.Response:
    vin = request.match_info["vin"]
    async with request.app[POOL].acquire() as conn:
        vehicle = await vehicles.get_vehicle(conn, vin)
    if vehicle is None:
        raise ApiError(404, "unknown_vehicle", f"no vehicle with VIN {vin}")
    return json_response(vehicle)


async def _read_args(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object of the command's arguments")
    return body


async def send_command(request: web.Request) -> web.Response:
    app = request.app
    requested_by = require_api_key(request, app[API_KEY])
    vin, command = request.match_info["vin"], request.match_info["command"]
    if command not in COMMAND_ARGS:
        raise ApiError(404, "unknown_command", f"unknown command {command!r}", {"known_commands": sorted(COMMAND_ARGS)})
    args = await _read_args(request)
    try:
        validated = validate_args(command, args).model_dump(exclude_none=True)
    except InvalidArguments as exc:
        raise ApiError(400, "invalid_arguments", str(exc), {"command": command}) from None

    timeout = app[SETTINGS].command_timeout
    command_id = uuid.uuid4()
    async with app[POOL].acquire() as conn:
        account = await vehicles.vehicle_account(conn, vin)
        if account is None:
            raise ApiError(404, "unknown_vehicle", f"no vehicle with VIN {vin}")
        await audit.record_queued(conn, command_id, vin, command, validated, requested_by)
    future = await app[RELAY].send(
        account, vin, command, validated, command_id=command_id, requested_by=requested_by, timeout=timeout
    )
    async with app[POOL].acquire() as conn:
        await audit.record_status(conn, command_id, "sent")
    try:
        result = await app[RELAY].wait(command_id, future, timeout)
    except CommandTimeout:
        async with app[POOL].acquire() as conn:
            await audit.record_status(conn, command_id, "expired", "no answer from the vehicle in time")
        raise ApiError(
            504, "command_timeout", f"the vehicle did not answer within {timeout:g}s", {"id": str(command_id)}
        ) from None
    async with app[POOL].acquire() as conn:
        await audit.record_status(conn, command_id, result.status.value, result.error, result.finished_at)
    return json_response(
        {
            "id": command_id,
            "vin": vin,
            "command": command,
            "args": validated,
            "status": result.status.value,
            "error": result.error,
            "finished_at": result.finished_at,
        }
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text for every program; needs the API key like the command routes."""
    require_api_key(request, request.app[API_KEY])
    body = request.app[PROGRAM_METRICS].render(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


# -- background resources -------------------------------------------------------------------------


def database_context(db: DatabaseSettings) -> Any:
    async def context(app: web.Application) -> AsyncIterator[None]:
        # min_size=0: the API starts (and reports the database down) even while PostgreSQL is not up.
        app[POOL] = await create_pool(db, min_size=0, max_size=10)
        app[SCHEMA_READY] = asyncio.Event()
        task = asyncio.create_task(_ensure_schema(app[POOL], app[SCHEMA_READY]))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await app[POOL].close()

    return context


async def _ensure_schema(pool: asyncpg.Pool, ready: asyncio.Event) -> None:
    backoff = Backoff(initial=0.5, maximum=15)
    while True:
        try:
            await apply_migrations(pool)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            delay = backoff.next_delay()
            log.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
        else:
            ready.set()
            return


def mqtt_context(mqtt_settings: MqttSettings) -> Any:
    async def context(app: web.Application) -> AsyncIterator[None]:
        prefix = mqtt_settings.topic_prefix
        status = app[STATUS] = StatusBoard(prefix)
        mqtt = MqttConnection(
            mqtt_settings,
            MqttOptions(component="api", client_id=f"api-{uuid.uuid4().hex[:12]}"),
        )
        relay = app[RELAY] = CommandRelay(mqtt, prefix)
        programs = app[PROGRAM_METRICS] = ProgramMetrics(prefix)
        mqtt.options.subscriptions = [relay.result_subscription(), *status.subscriptions(), *programs.subscriptions()]

        async def on_message(message: aiomqtt.Message) -> None:
            if not status.on_message(message) and not programs.on_message(message):
                await relay.on_result(message)

        mqtt.on_message = on_message
        app[MQTT] = mqtt
        task = asyncio.create_task(mqtt.run())
        yield
        await mqtt.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


def create_app(settings: ApiSettings, mqtt_settings: MqttSettings, db: DatabaseSettings) -> web.Application:
    api_metrics = ApiMetrics()
    app = web.Application(
        middlewares=[trace_middleware, api_metrics.middleware(), error_middleware], client_max_size=64 * 1024
    )
    app[METRICS] = api_metrics
    app[SETTINGS] = settings
    if settings.api_key is not None:
        app[API_KEY] = settings.api_key.get_secret_value()
    else:
        app[API_KEY] = secrets.token_urlsafe(24)
        log.warning("COMMAND_API_KEY is not set; development API key for this run: %s", app[API_KEY])
    app.cleanup_ctx.append(database_context(db))
    app.cleanup_ctx.append(mqtt_context(mqtt_settings))
    app.router.add_get("/api/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/vehicles", list_vehicles)
    app.router.add_get(f"/api/vehicles/{VIN_PATTERN}", get_vehicle)
    app.router.add_post(f"/api/vehicles/{VIN_PATTERN}/commands/{{command}}", send_command)
    return app
