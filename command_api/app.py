"""Composition root of the command API: middlewares, routes, the database pool, the MQTT
connection (command results, component status, metrics, the live stream) and background tasks."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from command_api.auth import Authenticator
from command_api.commands import CommandRelay, CommandService
from command_api.console_site import add_console
from command_api.cors import cors_middleware
from command_api.device_diag import DiagRelay
from command_api.device_edge import DeviceEdge
from command_api.errors import ApiError, error_middleware
from command_api.live import GRANTS_CHANNEL, LiveHub
from command_api.metrics import SYS_PREFIX, ApiMetrics, ProgramMetrics
from command_api.ratelimit import KeyedRateLimiter
from command_api.responses import json_response
from command_api.rollouts import RolloutEngine
from command_api.routes import (
    ALERTS,
    AUTHENTICATOR,
    CALLER_LIMIT,
    COMMANDS,
    DEVICE_CIPHER,
    DEVICE_EDGE,
    DIAG,
    LIVE,
    MQTT,
    POOL,
    SETTINGS,
    STATE_CACHE,
    VEHICLE_COMMAND_LIMIT,
    add_routes,
    auth_middleware,
)
from command_api.settings import ApiSettings
from command_api.state_cache import LatestStateCache
from command_api.status import AlertBoard, StatusBoard
from command_api.tracing import trace_middleware
from common import topics
from common.alerts import Alerts, AlertSettings, retain_on_the_broker
from common.backoff import Backoff
from common.database import DATABASE_ERRORS, apply_migrations, create_pool
from common.mqtt import MqttConnection, MqttOptions
from common.settings import DatabaseSettings, MqttSettings

log = logging.getLogger(__name__)

SCHEMA_READY = web.AppKey("schema_ready", asyncio.Event)
STATUS = web.AppKey("status", StatusBoard)
METRICS = web.AppKey("metrics", ApiMetrics)
PROGRAM_METRICS = web.AppKey("program_metrics", ProgramMetrics)

HEALTH_DB_TIMEOUT = 2.0
DEVICE_REVOKED_CHANNEL = "device_revoked"
# -- handlers -------------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    app = request.app
    components: dict[str, dict[str, Any]] = {
        "api": {"status": "ok"},
        "broker": {"status": "ok" if app[MQTT].connected.is_set() else "down"},
    }
    accounts: dict[str, int] = {}
    try:
        async with asyncio.timeout(HEALTH_DB_TIMEOUT), app[POOL].acquire() as conn:
            await conn.fetchval("SELECT 1")
            if app[SCHEMA_READY].is_set():
                rows = await conn.fetch("SELECT status, count(*) AS n FROM accounts GROUP BY status")
                accounts = {r["status"]: r["n"] for r in rows}
        components["database"] = {"status": "ok" if app[SCHEMA_READY].is_set() else "migrating"}
    except DATABASE_ERRORS as exc:
        components["database"] = {"status": "down", "error": str(exc) or type(exc).__name__}
    components |= app[STATUS].view()
    healthy = all(c["status"] == "ok" for c in components.values())
    # SAIC accounts by state, counted only (the probe is open): a failing account does not make the
    # service unhealthy (Cloud Run would restart it for one user's changed password).
    return json_response(
        {"status": "ok" if healthy else "degraded", "components": components, "accounts": accounts},
        status=200 if healthy else 503,
        headers={"Cache-Control": "no-store"},
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text for every program; for services (an API key), not for users."""
    principal = await request.app[AUTHENTICATOR].authenticate(request)
    if principal.kind != "service":
        raise ApiError(403, "forbidden", "metrics are for services and operators: use an API key")
    body = request.app[PROGRAM_METRICS].render(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


# -- background resources -------------------------------------------------------------------------


def database_context(db: DatabaseSettings) -> Any:
    async def context(app: web.Application) -> AsyncIterator[None]:
        # min_size=0: the API starts (and reports the database down) even while PostgreSQL is not up.
        app[POOL] = await create_pool(db, min_size=0, max_size=10)
        app[SCHEMA_READY] = asyncio.Event()
        app[STATE_CACHE] = LatestStateCache()
        tasks = [
            asyncio.create_task(_ensure_schema(app[POOL], app[SCHEMA_READY])),
            asyncio.create_task(_listen_once_migrated(app, app[POOL], app[SCHEMA_READY], app[STATE_CACHE])),
        ]
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await app[POOL].close()

    return context


async def _ensure_schema(pool: asyncpg.Pool, ready: asyncio.Event) -> None:
    backoff = Backoff(initial=0.5, maximum=15)
    while True:
        try:
            await apply_migrations(pool)
        except DATABASE_ERRORS as exc:
            delay = backoff.next_delay()
            log.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
        else:
            ready.set()
            return


async def _listen_once_migrated(
    app: web.Application, pool: asyncpg.Pool, ready: asyncio.Event, cache: LatestStateCache
) -> None:
    """The notifications come from triggers that the migrations create: the latest state's, and
    the grants' that end a user's live streams."""

    def grants_changed(user_id: str) -> None:
        if (live := app.get(LIVE)) is not None:
            live.grants_changed(user_id)

    def device_revoked(device_id: str) -> None:
        if (edge := app.get(DEVICE_EDGE)) is not None:
            edge.disconnect(device_id)

    await ready.wait()
    await cache.listen(pool, {GRANTS_CHANNEL: grants_changed, DEVICE_REVOKED_CHANNEL: device_revoked})


def mqtt_context(mqtt_settings: MqttSettings) -> Any:
    async def context(app: web.Application) -> AsyncIterator[None]:
        prefix = mqtt_settings.topic_prefix
        status = app[STATUS] = StatusBoard(prefix)
        mqtt = MqttConnection(
            mqtt_settings,
            MqttOptions(component="api", client_id=f"api-{uuid.uuid4().hex[:12]}"),
        )
        relay = CommandRelay(mqtt, prefix)
        service = app[COMMANDS] = CommandService(app[POOL], relay, app[SETTINGS].command_timeout)
        programs = app[PROGRAM_METRICS] = ProgramMetrics(prefix)
        live = app[LIVE] = LiveHub(prefix)
        alerts = app[ALERTS] = AlertBoard(prefix)
        diag = app[DIAG] = DiagRelay(mqtt)
        mqtt.options.subscriptions = [
            relay.result_subscription(),
            live.subscription(),
            *live.device_subscriptions(),
            diag.subscription(),
            *status.subscriptions(),
            *programs.subscriptions(),
            *alerts.subscriptions(),
        ]

        results_filter = topics.TopicFilter(relay.result_subscription()[0])
        results = f"/{topics.RESULT_SUFFIX}"
        device_reports = f"{topics.DEVICES}/"
        programs_own = (topics.internal_root(prefix), SYS_PREFIX)
        boards = (status, programs, alerts)

        def on_receive(topic: str, payload: bytes, _retained: bool) -> None:
            # Synchronous, in the connection's read of each packet: the whole fleet's telemetry
            # arrives here, and no message object is made for it (common.mqtt's receive hook).
            # Filters split the topic to match it: a car's telemetry is told apart by its ends first.
            if topic.startswith(programs_own):
                for board in boards:
                    if board.on_message(topic, payload):
                        break
            elif topic.startswith(device_reports):
                if not diag.on_message(topic, payload):
                    live.on_device_message(topic, payload)
            elif topic.endswith(results) and results_filter.matches(topic):
                service.on_result(topic, payload)
            else:
                live.on_message(topic, payload)

        mqtt.options.on_receive = on_receive
        app[MQTT] = mqtt
        if (cipher := app.get(DEVICE_CIPHER)) is not None and mqtt_settings.devices_password is not None:
            app[DEVICE_EDGE] = DeviceEdge(app[POOL], cipher, mqtt_settings, app[METRICS].registry)
        tasks = [asyncio.create_task(mqtt.run()), asyncio.create_task(service.sweep_expired())]
        if DEVICE_CIPHER in app:  # devices are enabled: one replica at a time drives the OTA rollouts
            own_alerts = Alerts("api", AlertSettings.from_env())
            retain_on_the_broker(own_alerts, mqtt, topics.alerts_topic(prefix, "api"))
            settings = app[SETTINGS]
            engine = RolloutEngine(app[POOL], mqtt, own_alerts, settings.rollout_tick, settings.rollout_device_timeout)
            tasks.append(asyncio.create_task(engine.run()))
        yield
        if (edge := app.get(DEVICE_EDGE)) is not None:
            edge.close_all()
        await live.close_all()
        await service.finish_writes()
        await mqtt.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    return context


def create_app(settings: ApiSettings, mqtt_settings: MqttSettings, db: DatabaseSettings) -> web.Application:
    """Raises AuthConfigError for the production profile without authentication."""
    api_metrics = ApiMetrics()
    app = web.Application(
        middlewares=[
            trace_middleware,
            api_metrics.middleware(),
            cors_middleware(settings.allowed_origins),
            error_middleware,
            auth_middleware,
        ],
        client_max_size=64 * 1024,
    )
    app[METRICS] = api_metrics
    app[SETTINGS] = settings
    app[AUTHENTICATOR] = Authenticator(settings)
    app[CALLER_LIMIT] = KeyedRateLimiter(settings.user_requests_per_minute, "caller")
    app[VEHICLE_COMMAND_LIMIT] = KeyedRateLimiter(settings.vehicle_commands_per_minute, "vehicle's commands")
    app.cleanup_ctx.append(database_context(db))
    app.cleanup_ctx.append(mqtt_context(mqtt_settings))
    app.router.add_get("/api/health", health)
    app.router.add_get("/metrics", metrics)
    add_routes(app, settings)
    add_console(app, settings)
    return app
