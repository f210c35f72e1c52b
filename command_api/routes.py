"""The `/api` handlers. Who the caller is and what it may reach is settled before they run
(`auth_middleware`); each handler checks the vehicle against `vehicle_access`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

from command_api import accounts, audit, derived, devices, history, operations, organizations, rollouts, vehicles
from command_api.auth import Authenticator, Principal
from command_api.commands import CommandService
from command_api.device_diag import DiagRelay
from command_api.device_edge import DeviceEdge
from command_api.errors import ApiError
from command_api.live import LiveHub
from command_api.openapi import build_openapi, docs_page
from command_api.ratelimit import KeyedRateLimiter
from command_api.responses import dumps, encoded_json_response, json_response
from command_api.settings import ApiSettings
from command_api.state_cache import LatestStateCache
from command_api.status import AlertBoard
from common import topics
from common.account_secrets import AccountCipher, AccountCipherSettings, DeviceCipherSettings
from common.commands import COMMAND_ARGS, InvalidArguments, validate_args
from common.database import Connection
from common.mqtt import MqttConnection, MqttNotConnected
from common.values import is_vin

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

SETTINGS = web.AppKey("settings", ApiSettings)
POOL = web.AppKey("pool", asyncpg.Pool)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
CALLER_LIMIT = web.AppKey("caller_limit", KeyedRateLimiter)
VEHICLE_COMMAND_LIMIT = web.AppKey("vehicle_command_limit", KeyedRateLimiter)
COMMANDS = web.AppKey("commands", CommandService)
LIVE = web.AppKey("live", LiveHub)
OPENAPI = web.AppKey("openapi", dict)
ALERTS = web.AppKey("alerts", AlertBoard)
STATE_CACHE = web.AppKey("state_cache", LatestStateCache)
ACCOUNT_CIPHER = web.AppKey("account_cipher", AccountCipher)
DEVICE_CIPHER = web.AppKey("device_cipher", AccountCipher)
DEVICE_EDGE = web.AppKey("device_edge", DeviceEdge)
MQTT = web.AppKey("mqtt", MqttConnection)
DIAG = web.AppKey("diag", DiagRelay)
FIRMWARE_KEY: web.AppKey[ec.EllipticCurvePublicKey] = web.AppKey("firmware_key")  # cryptography only once set
PRINCIPAL = web.RequestKey("principal", Principal)

OPEN_PATHS = frozenset({"/api/health", "/api/openapi.json", "/api-docs"})
VIN_PATTERN = "{vin:[A-Za-z0-9_-]{1,64}}"
ACCOUNT_PATH = "/api/accounts/{id:[0-9]{1,18}}"
DEVICE_PATH = "/api/devices/{device_id:[A-Za-z0-9_-]{1,64}}"
DEVICE_TELEMETRY_LIMIT = 100
ROLLOUT_PATH = "/admin/rollouts/{id:[0-9]{1,18}}"
MAX_IDEMPOTENCY_KEY = 255
type PeriodDetails = Callable[[Connection, dict[str, Any]], Awaitable[list[dict[str, Any]]]]


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate every `/api` call except the open ones; one rate limit per caller."""
    if request.path.startswith("/api/") and request.path not in OPEN_PATHS and request.method != "OPTIONS":
        principal = await request.app[AUTHENTICATOR].authenticate(request)
        request.app[CALLER_LIMIT].take(principal.requested_by)
        request[PRINCIPAL] = principal
    return await handler(request)


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def vin_of(request: web.Request) -> str:
    vin = request.match_info["vin"]
    if not is_vin(vin):
        raise ApiError(400, "invalid_vin", f"{vin!r} is not a VIN: 17 characters, digits and A-Z without I, O and Q")
    return vin


def pool_of(request: web.Request) -> asyncpg.Pool:
    return request.app[POOL]


async def list_vehicles(request: web.Request) -> web.Response:
    async with pool_of(request).acquire() as conn:
        return json_response({"vehicles": await vehicles.list_vehicles(conn, principal_of(request))})


async def get_vehicle(request: web.Request) -> web.Response:
    vin, pool = vin_of(request), pool_of(request)
    principal = principal_of(request)
    if principal.user_id is not None:
        async with pool.acquire() as conn:
            await vehicles.authorize(conn, principal, vin, must_exist=False, current=True)

    async def load() -> bytes | None:
        async with pool.acquire() as conn:
            vehicle = await vehicles.get_vehicle(conn, vin)
        return None if vehicle is None else dumps(vehicle)

    body = await request.app[STATE_CACHE].get(vin, load)
    if body is None:
        raise ApiError(404, "unknown_vehicle", f"no vehicle with VIN {vin}")
    return encoded_json_response(body)


async def vehicle_telemetry(request: web.Request) -> web.Response:
    vin = vin_of(request)
    async with pool_of(request).acquire() as conn:
        window = await vehicles.authorize(conn, principal_of(request), vin)
        return json_response(await history.page(conn, vin, request, window))


def _periods_of(table: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        vin = vin_of(request)
        async with pool_of(request).acquire() as conn:
            window = await vehicles.authorize(conn, principal_of(request), vin)
            return json_response(await derived.periods_page(conn, table, vin, request, window))

    return handler


async def vehicle_stats(request: web.Request) -> web.Response:
    vin = vin_of(request)
    async with pool_of(request).acquire() as conn:
        window = await vehicles.authorize(conn, principal_of(request), vin)
        return json_response(await derived.stats(conn, vin, request, window))


def _period_detail(table: str, key: str, details: PeriodDetails) -> Handler:
    """One drive or charge, with what it is read with (its path, its power curve)."""

    async def handler(request: web.Request) -> web.Response:
        period_id = derived.period_id(request)
        async with pool_of(request).acquire() as conn:
            period = await derived.get_period(conn, table, period_id)
            window = await vehicles.authorize(conn, principal_of(request), period["vin"])
            if not window.holds(period["start_ts"]):
                raise ApiError(403, "forbidden", "this was while the car was not your organization's")
            return json_response(period | {key: await details(conn, period)})

    return handler


async def vehicle_commands(request: web.Request) -> web.Response:
    vin = vin_of(request)
    limit = history.limit_param(request, default=20, maximum=100)
    async with pool_of(request).acquire() as conn:
        window = await vehicles.authorize(conn, principal_of(request), vin)
        rows = [r for r in await audit.recent(conn, vin, limit) if window.holds(r["created_at"])]
    return json_response({"commands": [audit.command_json(r) for r in rows]})


async def get_command(request: web.Request) -> web.Response:
    try:
        command_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise ApiError(400, "invalid_parameter", "the command id must be a UUID") from None
    async with pool_of(request).acquire() as conn:
        row = await audit.get(conn, command_id)
        if row is None:
            raise ApiError(404, "unknown_command", f"no command with id {command_id}")
        window = await vehicles.authorize(conn, principal_of(request), row["vin"])
        if not window.holds(row["created_at"]):
            raise ApiError(403, "forbidden", "this command was while the car was not your organization's")
    return json_response(audit.command_json(row))


async def _json_body(request: web.Request) -> Any:
    """The body as JSON; None for an empty one."""
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, and an integer of over 4,300 digits
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {str(exc)[:200]}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body nests too deeply") from None


async def _read_args(request: web.Request) -> dict[str, Any]:
    body = await _json_body(request)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object of the command's arguments")
    return body


def _wait(request: web.Request) -> float:
    settings = request.app[SETTINGS]
    text = request.query.get("wait")
    if text is None:
        return min(settings.command_wait, settings.command_timeout)
    try:
        wait = float(text)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= settings.command_timeout:
        raise ApiError(
            400, "invalid_parameter", f"`wait` must be a number of seconds from 0 to {settings.command_timeout:g}"
        )
    return wait


async def send_command(request: web.Request) -> web.Response:
    vin, command = vin_of(request), request.match_info["command"]
    if command not in COMMAND_ARGS:
        raise ApiError(404, "unknown_command", f"unknown command {command!r}", {"known_commands": sorted(COMMAND_ARGS)})
    principal = principal_of(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError(400, "invalid_parameter", f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    wait = _wait(request)
    args = await _read_args(request)
    try:
        validated = validate_args(command, args).model_dump(mode="json", exclude_none=True)
    except InvalidArguments as exc:
        raise ApiError(400, "invalid_arguments", str(exc), {"command": command}) from None
    if principal.user_id is not None:  # a service may command any car; submit answers 404 itself
        async with pool_of(request).acquire() as conn:
            await vehicles.authorize(conn, principal, vin, must_exist=False, act=True)
    request.app[VEHICLE_COMMAND_LIMIT].take(vin)
    record, replayed = await request.app[COMMANDS].submit(principal, vin, command, validated, key, wait)
    finished = record["status"] in audit.TERMINAL
    headers = {"Location": f"/api/commands/{record['id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(record, status=200 if finished else 202, headers=headers)


async def vehicle_live(request: web.Request) -> web.WebSocketResponse:
    vin = vin_of(request)
    async with pool_of(request).acquire() as conn:
        snapshot = await vehicles.readable_vehicle(conn, principal_of(request), vin)
    return await request.app[LIVE].serve(
        request, frozenset({vin}), {"type": "snapshot", "vehicles": [snapshot]}, principal_of(request)
    )


async def fleet_live(request: web.Request) -> web.WebSocketResponse:
    principal = principal_of(request)
    async with pool_of(request).acquire() as conn:
        vins = await vehicles.visible_vins(conn, principal)
        snapshot = await vehicles.list_vehicles(conn, principal)
    return await request.app[LIVE].serve(request, vins, {"type": "snapshot", "vehicles": snapshot}, principal)


async def ops_commands(request: web.Request) -> web.Response:
    operations.require_operator(principal_of(request))
    limit = history.limit_param(request, default=50, maximum=operations.MAX_ROWS)
    async with pool_of(request).acquire() as conn:
        return json_response(await operations.recent_commands(conn, limit))


async def ops_dead_letters(request: web.Request) -> web.Response:
    operations.require_operator(principal_of(request))
    limit = history.limit_param(request, default=50, maximum=operations.MAX_ROWS)
    async with pool_of(request).acquire() as conn:
        return json_response(await operations.recent_dead_letters(conn, limit))


async def ops_alerts(request: web.Request) -> web.Response:
    operations.require_operator(principal_of(request))
    return json_response(request.app[ALERTS].view())


def _account_cipher(request: web.Request) -> AccountCipher:
    return accounts.require_cipher(request.app.get(ACCOUNT_CIPHER))


def _account_id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def _account_body(request: web.Request, *, creating: bool) -> dict[str, Any]:
    return accounts.read_account(await _json_body(request), creating=creating)


async def list_accounts(request: web.Request) -> web.Response:
    async with pool_of(request).acquire() as conn:
        return json_response(await accounts.list_accounts(conn, principal_of(request)))


async def get_account(request: web.Request) -> web.Response:
    async with pool_of(request).acquire() as conn:
        return json_response(
            accounts.account_json(await accounts.find_account(conn, principal_of(request), _account_id(request)))
        )


async def create_account(request: web.Request) -> web.Response:
    cipher = _account_cipher(request)
    fields = await _account_body(request, creating=True)
    wait = request.app[SETTINGS].account_verify_wait
    return await accounts.create_account(pool_of(request), cipher, principal_of(request), fields, wait)


async def update_account(request: web.Request) -> web.Response:
    cipher = _account_cipher(request)
    fields = await _account_body(request, creating=False)
    wait = request.app[SETTINGS].account_verify_wait
    return await accounts.update_account(
        pool_of(request), cipher, principal_of(request), _account_id(request), fields, wait
    )


async def delete_account(request: web.Request) -> web.Response:
    async with pool_of(request).acquire() as conn:
        await accounts.delete_account(conn, principal_of(request), _account_id(request))
    return web.Response(status=204)


async def list_organizations(request: web.Request) -> web.Response:
    async with pool_of(request).acquire() as conn:
        return json_response(await organizations.list_organizations(conn, principal_of(request)))


async def create_organization(request: web.Request) -> web.Response:
    body = await _json_body(request)
    async with pool_of(request).acquire() as conn:
        return json_response(await organizations.create_organization(conn, principal_of(request), body), status=201)


async def get_organization(request: web.Request) -> web.Response:
    async with pool_of(request).acquire() as conn:
        organization = request.match_info["id"]
        return json_response(await organizations.get_organization(conn, principal_of(request), organization))


async def set_member(request: web.Request) -> web.Response:
    body = await _json_body(request)
    organization, user = request.match_info["id"], request.match_info["user"]
    async with pool_of(request).acquire() as conn:
        await organizations.set_member(conn, principal_of(request), organization, user, body)
        return json_response(await organizations.get_organization(conn, principal_of(request), organization))


async def remove_member(request: web.Request) -> web.Response:
    organization, user = request.match_info["id"], request.match_info["user"]
    async with pool_of(request).acquire() as conn:
        await organizations.remove_member(conn, principal_of(request), organization, user)
    return web.Response(status=204)


def _device_cipher(request: web.Request) -> AccountCipher:
    return devices.require_cipher(request.app.get(DEVICE_CIPHER))


async def list_devices(request: web.Request) -> web.Response:
    limit = history.limit_param(request, default=500, maximum=5000)
    async with pool_of(request).acquire() as conn:
        return json_response(await devices.list_devices(conn, principal_of(request), limit))


async def enrol_device(request: web.Request) -> web.Response:
    cipher = _device_cipher(request)
    fields = devices.read_enrolment(await _json_body(request))
    async with pool_of(request).acquire() as conn:
        return json_response(await devices.enrol(conn, cipher, principal_of(request), fields), status=201)


async def get_device(request: web.Request) -> web.Response:
    async with pool_of(request).acquire() as conn:
        row = await devices.find_device(conn, principal_of(request), request.match_info["device_id"])
        return json_response(devices.device_json(row))


async def revoke_device(request: web.Request) -> web.Response:
    async with pool_of(request).acquire() as conn:
        return json_response(await devices.revoke(conn, principal_of(request), request.match_info["device_id"]))


async def device_telemetry(request: web.Request) -> web.Response:
    limit = history.limit_param(request, default=DEVICE_TELEMETRY_LIMIT, maximum=1000)
    async with pool_of(request).acquire() as conn:
        body = await devices.telemetry(conn, principal_of(request), request.match_info["device_id"], limit)
        return json_response(body)


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


async def get_device_config(request: web.Request) -> web.Response:
    async with pool_of(request).acquire() as conn:
        body, version = await devices.get_config(conn, principal_of(request), request.match_info["device_id"])
    return json_response(body, headers=_etag(version))


async def put_device_config(request: web.Request) -> web.Response:
    based_on = devices.read_if_match(request.headers.get("If-Match"))
    config = devices.read_config(await request.read())
    device_id = request.match_info["device_id"]
    async with pool_of(request).acquire() as conn, conn.transaction():
        message, version = await devices.put_config(conn, principal_of(request), device_id, based_on, config)
        # Sent before the commit: a broker that does not take it rolls the version back (503), so
        # no stored version stays unsent. Retained: a device offline now gets it when it connects.
        try:
            await request.app[MQTT].publish(
                topics.device_topic(device_id, topics.DEVICE_CONFIG_UPDATE), dumps(message), qos=1, retain=True
            )
        except MqttNotConnected as exc:
            raise ApiError(503, "broker_unavailable", f"the configuration was not stored: {exc}") from None
    async with pool_of(request).acquire() as conn:
        body, _ = await devices.get_config(conn, principal_of(request), device_id)
    return json_response(body, headers=_etag(version))


async def device_live(request: web.Request) -> web.WebSocketResponse:
    principal = principal_of(request)
    async with pool_of(request).acquire() as conn:
        device = devices.device_json(await devices.find_device(conn, principal, request.match_info["device_id"]))
    first = {"type": "snapshot", "device": device}
    return await request.app[LIVE].serve(request, frozenset({device["device_id"]}), first, principal)


# -- /admin: firmware, rollouts and diagnostics, for operators (an API key) -----------------------------


async def _operator(request: web.Request) -> Principal:
    principal = await request.app[AUTHENTICATOR].authenticate(request)
    request.app[CALLER_LIMIT].take(principal.requested_by)
    if principal.kind != "service":
        raise ApiError(403, "forbidden", "the admin API is for operators: use an API key")
    return principal


def _rollout_id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def list_firmware(request: web.Request) -> web.Response:
    await _operator(request)
    async with pool_of(request).acquire() as conn:
        return json_response(await rollouts.list_firmware(conn))


async def add_firmware(request: web.Request) -> web.Response:
    principal = await _operator(request)
    key = request.app.get(FIRMWARE_KEY)
    if key is None:
        raise ApiError(503, "firmware_disabled", "no firmware here: set FIRMWARE_SIGNING_PUBLIC_KEY")
    fields = rollouts.read_firmware(await _json_body(request))
    async with pool_of(request).acquire() as conn:
        return json_response(await rollouts.add_firmware(conn, key, fields, principal.requested_by), status=201)


async def list_rollouts(request: web.Request) -> web.Response:
    await _operator(request)
    async with pool_of(request).acquire() as conn:
        return json_response(await rollouts.list_rollouts(conn))


async def create_rollout(request: web.Request) -> web.Response:
    principal = await _operator(request)
    fields = rollouts.read_rollout(await _json_body(request))
    async with pool_of(request).acquire() as conn:
        return json_response(await rollouts.create_rollout(conn, fields, principal.requested_by), status=201)


async def get_rollout(request: web.Request) -> web.Response:
    await _operator(request)
    async with pool_of(request).acquire() as conn:
        return json_response(await rollouts.get_rollout(conn, _rollout_id(request)))


def _rollout_change(status: str, allowed_from: tuple[str, ...]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def change(request: web.Request) -> web.Response:
        await _operator(request)
        threshold = rollouts.read_threshold(await _json_body(request)) if status == "active" else None
        async with pool_of(request).acquire() as conn, conn.transaction():
            rollout_id = _rollout_id(request)
            return json_response(await rollouts.set_status(conn, rollout_id, status, allowed_from, threshold))

    return change


async def device_diag(request: web.Request) -> web.Response:
    principal = await _operator(request)
    body = await _json_body(request) or {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_diag", "a diagnostic request is a JSON object (or no body)")
    device_id = request.match_info["device_id"]
    async with pool_of(request).acquire() as conn:
        device = await devices.find_device(conn, principal, device_id)
    if not device["online"]:
        raise ApiError(409, "device_offline", f"device {device_id} is offline: it can answer once it connects")
    answer = await request.app[DIAG].ask(device_id, body, request.app[SETTINGS].diag_wait)
    return json_response({"device_id": device_id, "response": answer})


async def device_mqtt(request: web.Request) -> web.StreamResponse:
    edge = request.app.get(DEVICE_EDGE)
    if edge is None:
        raise ApiError(
            503,
            "devices_disabled",
            "devices are not enabled here: set DEVICES_ENCRYPTION_KEY and MQTT_DEVICES_PASSWORD",
        )
    return await edge.handle(request)


async def openapi_document(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI])


async def api_docs(request: web.Request) -> web.Response:
    return web.Response(text=docs_page(request.app[OPENAPI]), content_type="text/html")


def add_routes(app: web.Application, settings: ApiSettings) -> None:
    if settings.accounts_key is not None:  # checked here, at start: a bad key fails the API, not a request
        key = settings.accounts_key.get_secret_value()
        app[ACCOUNT_CIPHER] = AccountCipher(AccountCipherSettings.from_env({"ACCOUNTS_ENCRYPTION_KEY": key}))
    if settings.devices_key is not None:
        key = settings.devices_key.get_secret_value()
        app[DEVICE_CIPHER] = AccountCipher(DeviceCipherSettings.from_env({"DEVICES_ENCRYPTION_KEY": key}))
    if settings.firmware_key is not None:
        app[FIRMWARE_KEY] = rollouts.load_public_key(settings.firmware_key)
    app[OPENAPI] = build_openapi(settings)
    app.router.add_get("/api/openapi.json", openapi_document)
    app.router.add_get("/api-docs", api_docs)
    app.router.add_get("/api/vehicles", list_vehicles)
    # The busiest routes first: aiohttp tries the routes under a prefix in the order they were added.
    app.router.add_get(f"/api/vehicles/{VIN_PATTERN}", get_vehicle)
    app.router.add_post(f"/api/vehicles/{VIN_PATTERN}/commands/{{command}}", send_command)
    app.router.add_get(f"/api/vehicles/{VIN_PATTERN}/telemetry", vehicle_telemetry)
    app.router.add_get(f"/api/vehicles/{VIN_PATTERN}/commands", vehicle_commands)
    for table in derived.PERIOD_TABLES:
        app.router.add_get(f"/api/vehicles/{VIN_PATTERN}/{table}", _periods_of(table))
    app.router.add_get(f"/api/vehicles/{VIN_PATTERN}/stats", vehicle_stats)
    app.router.add_get("/api/drives/{id}", _period_detail("drives", "path", derived.drive_path))
    app.router.add_get("/api/charges/{id}", _period_detail("charges", "curve", derived.charge_curve))
    app.router.add_get(f"/api/vehicles/{VIN_PATTERN}/live", vehicle_live)
    app.router.add_get("/api/live", fleet_live)
    app.router.add_get("/api/commands/{id}", get_command)
    app.router.add_get("/api/ops/commands", ops_commands)
    app.router.add_get("/api/ops/dead-letters", ops_dead_letters)
    app.router.add_get("/api/ops/alerts", ops_alerts)
    app.router.add_get("/api/accounts", list_accounts)
    app.router.add_post("/api/accounts", create_account)
    app.router.add_get(ACCOUNT_PATH, get_account)
    app.router.add_patch(ACCOUNT_PATH, update_account)
    app.router.add_delete(ACCOUNT_PATH, delete_account)
    app.router.add_get("/api/organizations", list_organizations)
    app.router.add_post("/api/organizations", create_organization)
    app.router.add_get("/api/organizations/{id}", get_organization)
    app.router.add_put("/api/organizations/{id}/members/{user}", set_member)
    app.router.add_delete("/api/organizations/{id}/members/{user}", remove_member)
    _add_device_routes(app)


def _add_device_routes(app: web.Application) -> None:
    app.router.add_get("/api/devices", list_devices)
    app.router.add_post("/api/devices", enrol_device)
    app.router.add_get(DEVICE_PATH, get_device)
    app.router.add_delete(DEVICE_PATH, revoke_device)
    app.router.add_get(f"{DEVICE_PATH}/telemetry", device_telemetry)
    app.router.add_get(f"{DEVICE_PATH}/config", get_device_config)
    app.router.add_put(f"{DEVICE_PATH}/config", put_device_config)
    app.router.add_get(f"{DEVICE_PATH}/live", device_live)
    app.router.add_get("/mqtt", device_mqtt)
    app.router.add_get("/admin/firmware", list_firmware)
    app.router.add_post("/admin/firmware", add_firmware)
    app.router.add_get("/admin/rollouts", list_rollouts)
    app.router.add_post("/admin/rollouts", create_rollout)
    app.router.add_get(ROLLOUT_PATH, get_rollout)
    app.router.add_post(f"{ROLLOUT_PATH}/abort", _rollout_change("aborted", ("active", "paused")))
    app.router.add_post(f"{ROLLOUT_PATH}/resume", _rollout_change("active", ("paused",)))
    app.router.add_post("/admin/devices/{device_id:[A-Za-z0-9_-]{1,64}}/diag", device_diag)
