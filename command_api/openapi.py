"""The OpenAPI 3.1 document (enough to build the frontend from) and a self-contained docs page.

Command bodies come from the same pydantic models the gateway validates with (common.commands), so
the document cannot drift from what the API accepts.
"""

from __future__ import annotations

import html
import json
from typing import Any

from command_api.derived import BUCKETS
from command_api.history import MAX_LIMIT
from command_api.operations import MAX_ROWS as MAX_OPS_ROWS
from command_api.settings import ApiSettings
from common.commands import COMMAND_ARGS

VIN = {"type": "string", "pattern": "^[A-HJ-NPR-Z0-9]{17}$", "example": "LSJTEST0000000001"}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
NUMBER = {"type": ["number", "null"]}
FLAG = {"type": ["boolean", "null"]}
TEXT = {"type": ["string", "null"]}
COMMAND_STATUSES = ["queued", "sent", "running", "succeeded", "failed", "rejected", "expired"]

ERROR_TEXT = {
    400: "The request is malformed; `error.message` says what was wrong",
    401: "Not authenticated, or the token / key was refused",
    403: "Authenticated, but `user_vehicles` does not give the caller this vehicle",
    404: "No such vehicle, command or route",
    405: "Method not allowed",
    413: "Body too large",
    422: "The Idempotency-Key was already used for a different request",
    429: "Rate limit reached; retry after `Retry-After` seconds",
    503: "The database or the broker is not reachable right now",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _responses(ok: dict[str, dict[str, Any]], *errors: int) -> dict[str, Any]:
    responses = dict(ok)
    for status in (400, 401, 404, 405, 429, 503, *errors):
        headers = {"Retry-After": {"schema": {"type": "string"}}} if status == 429 else None
        responses[str(status)] = _json(_ref("Error"), ERROR_TEXT[status], headers)
    return responses


def _schemas() -> dict[str, Any]:
    state = {
        "type": ["object", "null"],
        "properties": {
            "ts": TIME,
            "received_at": TIME,
            "soc": NUMBER,
            "range_km": NUMBER,
            "latitude": NUMBER,
            "longitude": NUMBER,
            "speed_kmh": NUMBER,
            "locked": FLAG,
            "charging": FLAG,
            "available": FLAG,
            "values": {"type": "object", "description": "every value, nested as the topic tree (full reads only)"},
        },
        "required": ["ts", "received_at"],
    }
    vehicle = {
        "type": "object",
        "properties": {
            "vin": {"type": "string"},
            "account": {"type": "string"},
            "brand": TEXT,
            "model": TEXT,
            "name": TEXT,
            "first_seen": TIME,
            "last_seen": TIME,
            "state": _ref("VehicleState"),
        },
        "required": ["vin", "account", "state"],
    }
    command = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "vin": {"type": "string"},
            "command": {"type": "string", "enum": sorted(COMMAND_ARGS)},
            "args": {"type": "object"},
            "status": {"type": "string", "enum": COMMAND_STATUSES},
            "error": TEXT,
            "requested_by": TEXT,
            "idempotency_key": TEXT,
            "created_at": TIME,
            "updated_at": TIME,
            "finished_at": NULLABLE_TIME,
            "expires_at": {
                **NULLABLE_TIME,
                "description": "the command expires (`expired`) if the gateway has not started it by then",
            },
            "answer_by": {
                **NULLABLE_TIME,
                "description": "while `running`: its outcome comes by then, else it ends `failed` (outcome unknown)",
            },
        },
        "required": ["id", "vin", "command", "args", "status", "created_at"],
    }
    telemetry_item = {
        "type": "object",
        "properties": {
            "ts": TIME,
            "soc": NUMBER,
            "range_km": NUMBER,
            "latitude": NUMBER,
            "longitude": NUMBER,
            "speed_kmh": NUMBER,
            "charging": FLAG,
            "odometer_km": NUMBER,
            "power_kw": {**NUMBER, "description": "negative while charging (the car's sign)"},
            "running": FLAG,
            "interior_temp_c": NUMBER,
            "exterior_temp_c": NUMBER,
            "values": {"type": "object", "description": "the values this reading changed, by topic path"},
        },
        "required": ["ts", "values"],
    }
    schemas: dict[str, Any] = {
        **_period_schemas(),
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "details": {"type": "object"},
                    },
                    "required": ["code", "message", "details"],
                }
            },
            "required": ["error"],
        },
        "VehicleState": state,
        "Vehicle": vehicle,
        "VehicleList": {
            "type": "object",
            "properties": {"vehicles": {"type": "array", "items": _ref("Vehicle")}},
            "required": ["vehicles"],
        },
        "TelemetryPage": {
            "type": "object",
            "properties": {
                "vin": {"type": "string"},
                "items": {"type": "array", "items": telemetry_item},
                "next_cursor": {"type": ["string", "null"], "description": "pass as `cursor` for the next page"},
            },
            "required": ["vin", "items", "next_cursor"],
        },
        "Command": command,
        "CommandList": {
            "type": "object",
            "properties": {"commands": {"type": "array", "items": _ref("Command")}},
            "required": ["commands"],
        },
        "Health": {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "components": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "status": {"type": "string"},
                            "since": NULLABLE_TIME,
                            "instances": {
                                "type": "object",
                                "description": "Each instance of the program: `ok` while it renews its presence, "
                                "`stale` once it has been silent for three periods. The component is `ok` while "
                                "any instance is.",
                                "additionalProperties": {
                                    "type": "object",
                                    "properties": {"status": {"type": "string", "enum": ["ok", "stale"]}, "seen": TIME},
                                    "required": ["status", "seen"],
                                },
                            },
                        },
                        "required": ["status"],
                    },
                },
                "accounts": {
                    "type": "object",
                    "description": "SAIC accounts by state (pending, active, rejected, failing): counts only. "
                    "A failing account does not make the service degraded.",
                    "additionalProperties": {"type": "integer"},
                },
            },
            "required": ["status", "components"],
        },
    }
    for name, model in COMMAND_ARGS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[_args_name(name)] = schema
    return schemas


def _period(description: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": {
            "id": {"type": "integer"},
            "vin": {"type": "string"},
            "start_ts": TIME,
            "end_ts": TIME,
            "in_progress": {"type": "boolean", "description": "still going on: the figures grow"},
            "duration_s": {"type": "number"},
            "readings": {"type": "integer"},
            "start_soc": NUMBER,
            "end_soc": NUMBER,
            **fields,
        },
        "required": ["id", "vin", "start_ts", "end_ts", "in_progress", "duration_s", "readings"],
    }


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "vin": {"type": "string"},
            "items": {"type": "array", "items": _ref(item)},
            "next_cursor": {"type": ["string", "null"], "description": "pass as `cursor` for the next page"},
        },
        "required": ["vin", "items", "next_cursor"],
    }


def _period_schemas() -> dict[str, Any]:
    drive = _period(
        "A drive: from the last reading before the car moved to the first reading of a stop that lasted",
        {
            **{f"{e}_{c}": NUMBER for e in ("start", "end") for c in ("latitude", "longitude", "odometer_km")},
            "distance_km": {**NUMBER, "description": "odometer difference, else the sum of GPS steps"},
            "energy_used_kwh": {**NUMBER, "description": "SoC used times the battery capacity"},
            "efficiency_wh_per_km": NUMBER,
            "avg_speed_kmh": NUMBER,
            "max_speed_kmh": NUMBER,
        },
    )
    charge = _period(
        "A charging session",
        {
            "energy_added_kwh": NUMBER,
            "energy_source": {
                "type": ["string", "null"],
                "enum": ["power", "soc", "power+soc", None],
                "description": "integrated from the reported power, from the SoC gain, or both",
            },
            "avg_power_kw": NUMBER,
            "peak_power_kw": NUMBER,
            "charger_type": {"type": ["string", "null"], "enum": ["AC", "DC", None]},
            "latitude": NUMBER,
            "longitude": NUMBER,
            "cost": {**NUMBER, "description": "energy times CHARGE_PRICE_PER_KWH, when a tariff is set"},
            "currency": TEXT,
        },
    )
    park = _period(
        "A parked period",
        {
            "soc_lost": NUMBER,
            "drain_per_hour": {**NUMBER, "description": "SoC points lost per hour (periods of an hour or more)"},
            "latitude": NUMBER,
            "longitude": NUMBER,
        },
    )
    point = {
        "type": "object",
        "properties": {"ts": TIME, "latitude": NUMBER, "longitude": NUMBER, "speed_kmh": NUMBER, "soc": NUMBER},
        "required": ["ts"],
    }
    curve_point = {"type": "object", "properties": {"ts": TIME, "soc": NUMBER, "power_kw": NUMBER}, "required": ["ts"]}
    stats_figures = {
        "drives": {"type": "integer"},
        "distance_km": {"type": "number"},
        "energy_used_kwh": NUMBER,
        "efficiency_wh_per_km": NUMBER,
        "charges": {"type": "integer"},
        "energy_added_kwh": NUMBER,
        "cost": NUMBER,
        "drain_per_hour": NUMBER,
    }
    return {
        "Drive": drive,
        "Charge": charge,
        "Park": park,
        "DrivePage": _page("Drive"),
        "ChargePage": _page("Charge"),
        "ParkPage": _page("Park"),
        "DriveDetail": {
            "allOf": [_ref("Drive")],
            "type": "object",
            "properties": {"path": {"type": "array", "items": point}},
            "required": ["path"],
        },
        "ChargeDetail": {
            "allOf": [_ref("Charge")],
            "type": "object",
            "properties": {"curve": {"type": "array", "items": curve_point}},
            "required": ["curve"],
        },
        "Stats": {
            "type": "object",
            "properties": {
                "vin": {"type": "string"},
                "bucket": {"type": "string", "enum": list(BUCKETS)},
                "tz": {"type": "string"},
                "from": TIME,
                "to": TIME,
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"start": TIME, **stats_figures},
                        "required": ["start", "drives", "distance_km", "charges"],
                    },
                },
                "totals": {"type": "object", "properties": stats_figures, "required": ["drives", "charges"]},
            },
            "required": ["vin", "bucket", "items", "totals"],
        },
    }


def _periods_operation(table: str, item: str, what: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": f"vehicle_{table}",
            "tags": ["history"],
            "summary": f"The vehicle's {what}, newest first, with cursor pagination (`from` / `to` bound the start)",
            "parameters": [_vin_parameter(), *_window_parameters()],
            "responses": _responses({"200": _json(_ref(f"{item}Page"), f"One page of {what}")}, 403),
        }
    }


def _window_parameters() -> list[dict[str, Any]]:
    return [
        {"name": "from", "in": "query", "required": False, "schema": TIME, "description": "inclusive"},
        {"name": "to", "in": "query", "required": False, "schema": TIME, "description": "exclusive"},
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
        },
        {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
    ]


def _detail_operation(name: str, schema: str, what: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": f"get_{name}",
            "tags": ["history"],
            "summary": what,
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}],
            "responses": _responses({"200": _json(_ref(schema), what)}, 403),
        }
    }


def _organization_paths() -> dict[str, Any]:
    role = {"type": "string", "enum": ["owner", "operator", "viewer"]}
    member = {
        "type": "object",
        "properties": {"user_id": {"type": "string", "format": "uuid"}, "role": role, "created_at": TIME},
        "required": ["user_id", "role"],
    }
    organization = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "created_at": TIME,
            "role": role,
            "members": {"type": "array", "items": member},
        },
        "required": ["id", "name", "role"],
    }
    org_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
    user_id = {"name": "user", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
    who = (
        "Owners manage members and the organization's SAIC accounts, operators send commands to its cars, "
        "viewers read them. An API key acts as an owner of every organization; another's organization is 404."
    )
    named = {"type": "object", "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200}}}
    with_role = {"type": "object", "properties": {"role": role}, "required": ["role"]}
    return {
        "/api/organizations": {
            "get": {
                "operationId": "list_organizations",
                "tags": ["organizations"],
                "summary": "The caller's organizations, with the caller's role in each",
                "description": who,
                "responses": _responses(
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"organizations": {"type": "array", "items": organization}},
                            },
                            "The organizations",
                        )
                    }
                ),
            },
            "post": {
                "operationId": "create_organization",
                "tags": ["organizations"],
                "summary": "Create an organization: a user who creates it is its first owner",
                "description": who,
                "requestBody": {"required": True, "content": {"application/json": {"schema": named}}},
                "responses": _responses({"201": _json(organization, "Created")}),
            },
        },
        "/api/organizations/{id}": {
            "get": {
                "operationId": "get_organization",
                "tags": ["organizations"],
                "summary": "One organization and its members",
                "description": who,
                "parameters": [org_id],
                "responses": _responses({"200": _json(organization, "The organization")}),
            }
        },
        "/api/organizations/{id}/members/{user}": {
            "put": {
                "operationId": "set_member",
                "tags": ["organizations"],
                "summary": "Add a member or change their role (owners only)",
                "description": who,
                "parameters": [org_id, user_id],
                "requestBody": {"required": True, "content": {"application/json": {"schema": with_role}}},
                "responses": _responses(
                    {
                        "200": _json(organization, "The organization with its members"),
                        "409": _json(_ref("Error"), "An organization keeps at least one owner"),
                    },
                    403,
                ),
            },
            "delete": {
                "operationId": "remove_member",
                "tags": ["organizations"],
                "summary": "Remove a member (owners only)",
                "description": who,
                "parameters": [org_id, user_id],
                "responses": _responses(
                    {
                        "204": {"description": "Removed"},
                        "409": _json(_ref("Error"), "An organization keeps at least one owner"),
                    },
                    403,
                ),
            },
        },
    }


def _account_paths() -> dict[str, Any]:
    text = {"type": "string", "minLength": 1}
    account = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "username": {"type": "string"},
            "region": {"type": "string", "enum": ["eu", "au", "tr", "maxus-eu"]},
            "base_uri": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["pending", "active", "rejected", "failing"]},
            "status_reason": {"type": ["string", "null"]},
            "linked_by": {"type": ["string", "null"], "format": "uuid"},
            "organization_id": {"type": ["string", "null"], "format": "uuid"},
            "created_at": TIME,
            "updated_at": TIME,
        },
        "required": ["id", "username", "region", "status", "created_at", "updated_at"],
    }
    fields = {
        "username": {**text, "maxLength": 320},
        "password": {**text, "maxLength": 200, "writeOnly": True},
        "region": {"type": "string", "enum": ["eu", "au", "tr", "maxus-eu"], "default": "eu"},
        "base_uri": {"type": "string", "pattern": "^https?://.+/$", "description": "overrides the region's API"},
        "organization_id": {
            "type": "string",
            "format": "uuid",
            "description": "the organization that owns it (the caller must be an owner); its members see its cars",
        },
    }
    new = {"type": "object", "properties": fields, "required": ["username", "password"], "additionalProperties": False}
    change = {"type": "object", "properties": {k: v for k, v in fields.items() if k != "username"}, "minProperties": 1}
    account_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
    who = (
        "An API key manages every account; a frontend user links their own MG account and manages the ones they "
        "linked (others are 404). Needs ACCOUNTS_ENCRYPTION_KEY (else 503)."
    )
    verified = {
        "202": _json(account, "No replica has tried the login yet: `GET /api/accounts/{id}` tells the outcome"),
        "409": _json(_ref("Error"), "The account is already linked"),
        "422": _json(_ref("Error"), "SAIC refused the login, with its reason; nothing is stored"),
    }
    return {
        "/api/accounts": {
            "get": {
                "operationId": "list_accounts",
                "tags": ["accounts"],
                "summary": "The SAIC accounts the caller may see (never their passwords)",
                "description": who,
                "responses": _responses(
                    {
                        "200": _json(
                            {"type": "object", "properties": {"accounts": {"type": "array", "items": account}}},
                            "The accounts",
                        )
                    }
                ),
            },
            "post": {
                "operationId": "create_account",
                "tags": ["accounts"],
                "summary": "Link a SAIC account: its first login is verified before it is kept",
                "description": who + " A user who links an account is granted its cars.",
                "requestBody": {"required": True, "content": {"application/json": {"schema": new}}},
                "responses": _responses(
                    {"201": _json(account, "SAIC accepted the login: the account is polled")} | verified
                ),
            },
        },
        "/api/accounts/{id}": {
            "get": {
                "operationId": "get_account",
                "tags": ["accounts"],
                "summary": "One account and its state (pending, active, rejected, failing, with the reason)",
                "description": who,
                "parameters": [account_id],
                "responses": _responses({"200": _json(account, "The account")}),
            },
            "patch": {
                "operationId": "update_account",
                "tags": ["accounts"],
                "summary": "Change an account's password, region or API address; its login is verified again",
                "description": who,
                "parameters": [account_id],
                "requestBody": {"required": True, "content": {"application/json": {"schema": change}}},
                "responses": _responses({"200": _json(account, "SAIC accepted the new login")} | verified),
            },
            "delete": {
                "operationId": "delete_account",
                "tags": ["accounts"],
                "summary": "Remove an account: the replica serving it stops polling it",
                "description": who,
                "parameters": [account_id],
                "responses": _responses({"204": {"description": "Removed"}}),
            },
        },
    }


def _device_paths() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "device_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "mac": {"type": "string"},
        "organization_id": {"type": "string", "format": "uuid"},
        "name": TEXT,
        "firmware_version": TEXT,
        "online": {"type": "boolean"},
        "last_seen": NULLABLE_TIME,
        "config_version": {"type": "integer"},
        "revoked_at": NULLABLE_TIME,
        "created_at": TIME,
    }
    required = ["device_id", "mac", "organization_id", "online", "config_version", "created_at"]
    device = {"type": "object", "properties": properties, "required": required}
    enrolled = {
        "type": "object",
        "properties": {
            **properties,
            "secret": {
                "type": "string",
                "pattern": "^[0-9a-f]{64}$",
                "description": "shown this once: the device signs its MQTT password with it",
            },
        },
        "required": [*required, "secret"],
    }
    new = {
        "type": "object",
        "properties": {
            "mac": {"type": "string", "example": "00:1a:2b:3c:4d:5e"},
            "organization_id": {"type": "string", "format": "uuid"},
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "firmware_version": {"type": "string", "minLength": 1, "maxLength": 64},
        },
        "required": ["mac", "organization_id"],
        "additionalProperties": False,
    }
    version = {
        "type": "object",
        "properties": {
            "version": {"type": "integer"},
            "config": {"type": "object"},
            "changed_by": {"type": "string"},
            "changed_at": TIME,
            "status": {"type": "string", "enum": ["pending", "applied", "failed"]},
            "status_reason": TEXT,
            "status_at": NULLABLE_TIME,
        },
        "required": ["version", "config", "changed_by", "changed_at", "status"],
    }
    config = {
        "type": "object",
        "properties": {
            "device_id": {"type": "string"},
            "version": {"type": "integer", "description": "0: never configured"},
            "config": {"type": "object"},
            "status": {"type": ["string", "null"], "enum": ["pending", "applied", "failed", None]},
            "versions": {"type": "array", "items": version, "description": "the newest 10, newest first"},
        },
        "required": ["device_id", "version", "config", "versions"],
    }
    etag = {"ETag": {"schema": {"type": "string"}, "description": 'the version, e.g. "3": send it as If-Match'}}
    device_id = {"name": "device_id", "in": "path", "required": True, "schema": {"type": "string"}}
    who = (
        "A device belongs to an organization: its owners enrol and revoke, owners and operators configure, every "
        "member reads; an API key does all of it. Another organization's device is 404. Needs "
        "DEVICES_ENCRYPTION_KEY (else 503). Devices connect with MQTT over WebSocket at `/mqtt` (docs/devices.md)."
    )
    readings = {
        "type": "object",
        "properties": {
            "device_id": {"type": "string"},
            "readings": {
                "type": "array",
                "items": {"type": "object", "properties": {"ts": TIME, "payload": {"type": "object"}}},
            },
        },
        "required": ["device_id", "readings"],
    }
    return {
        "/api/devices": {
            "get": {
                "operationId": "list_devices",
                "tags": ["devices"],
                "summary": "The directly connected devices the caller may see: offline first, with counts",
                "description": who,
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 5000}}
                ],
                "responses": _responses(
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "devices": {"type": "array", "items": device},
                                    "total": {"type": "integer"},
                                    "online": {"type": "integer"},
                                },
                                "required": ["devices", "total", "online"],
                            },
                            "The devices",
                        )
                    }
                ),
            },
            "post": {
                "operationId": "enrol_device",
                "tags": ["devices"],
                "summary": "Enrol a device: its id comes from its MAC, its secret is answered once",
                "description": who,
                "requestBody": {"required": True, "content": {"application/json": {"schema": new}}},
                "responses": _responses(
                    {
                        "201": _json(enrolled, "Enrolled"),
                        "409": _json(_ref("Error"), "A device with this MAC is enrolled already"),
                    },
                    403,
                ),
            },
        },
        "/api/devices/{device_id}": {
            "get": {
                "operationId": "get_device",
                "tags": ["devices"],
                "summary": "One device: online, last seen, firmware and configuration version",
                "description": who,
                "parameters": [device_id],
                "responses": _responses({"200": _json(device, "The device")}),
            },
            "delete": {
                "operationId": "revoke_device",
                "tags": ["devices"],
                "summary": "Revoke a device: its connection is closed at once and it cannot connect again",
                "description": who,
                "parameters": [device_id],
                "responses": _responses({"200": _json(device, "Revoked (its record and history stay)")}, 403),
            },
        },
        "/api/devices/{device_id}/live": {
            "get": {
                "operationId": "device_live",
                "tags": ["live"],
                "summary": "WebSocket: what the device reports, as it reports it",
                "description": (
                    'As `/api/vehicles/{vin}/live`: first `{"type": "snapshot", "device": {...}}`, then '
                    '`{"type": "telemetry", "device_id", "payload", "received_at"}` per report and '
                    '`{"type": "status", "online"}` when it comes and goes.'
                ),
                "parameters": [
                    device_id,
                    {"name": "access_token", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
                "responses": _responses({"101": {"description": "Switching to the WebSocket protocol"}}),
            }
        },
        "/api/devices/{device_id}/telemetry": {
            "get": {
                "operationId": "device_telemetry",
                "tags": ["devices"],
                "summary": "What the device reported, newest first",
                "description": who,
                "parameters": [
                    device_id,
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                ],
                "responses": _responses({"200": _json(readings, "The readings")}),
            },
        },
        "/api/devices/{device_id}/config": {
            "get": {
                "operationId": "get_device_config",
                "tags": ["devices"],
                "summary": "The device's configuration, its state (pending, applied, failed) and earlier versions",
                "description": who,
                "parameters": [device_id],
                "responses": _responses({"200": _json(config, "The configuration", etag)}),
            },
            "put": {
                "operationId": "put_device_config",
                "tags": ["devices"],
                "summary": "Change the configuration: sent to the device (retained), pending until it answers",
                "description": who,
                "parameters": [
                    device_id,
                    {
                        "name": "If-Match",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": 'the version the change is based on, e.g. "3", or * for any',
                    },
                ],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": _responses(
                    {
                        "200": _json(config, "Stored as the next version and sent", etag),
                        "409": _json(_ref("Error"), "The device is revoked"),
                        "412": _json(_ref("Error"), "Another change came first: read the configuration again"),
                        "428": _json(_ref("Error"), "If-Match is missing"),
                    },
                    403,
                    413,
                ),
            },
        },
    }


def _admin_paths() -> dict[str, Any]:
    firmware = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "version": {"type": "string"},
            "url": {"type": "string"},
            "sha256": {"type": "string"},
            "signature": {"type": "string"},
            "created_by": {"type": "string"},
            "created_at": TIME,
        },
        "required": ["id", "version", "url", "sha256", "signature"],
    }
    upload = {
        "type": "object",
        "properties": {
            "version": {"type": "string", "minLength": 1, "maxLength": 64},
            "url": {"type": "string", "pattern": "^https?://"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "signature": {
                "type": "string",
                "description": "base64 DER: the vendor's ECDSA P-256 signature of the SHA-256 digest",
            },
        },
        "required": ["version", "url", "sha256", "signature"],
        "additionalProperties": False,
    }
    rollout = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "organization_id": {"type": "string", "format": "uuid"},
            "firmware_id": {"type": "integer"},
            "stages": {"type": "array", "items": {"type": "integer"}},
            "stage": {"type": "integer", "description": "the index of the stage reached"},
            "failure_threshold": {"type": "number"},
            "status": {"type": "string", "enum": ["active", "paused", "aborted", "completed"]},
            "status_reason": TEXT,
            "progress": {
                "type": "object",
                "description": "devices in the organization, devices included so far, and counts by status",
                "additionalProperties": {"type": "integer"},
            },
            "devices": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["id", "organization_id", "firmware_id", "stages", "stage", "status"],
    }
    new = {
        "type": "object",
        "properties": {
            "firmware_id": {"type": "integer", "minimum": 1},
            "organization_id": {"type": "string", "format": "uuid"},
            "stages": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": 100},
                "description": "rising cumulative percentages ending at 100 (default 1, 10, 50, 100)",
            },
            "failure_threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.02},
        },
        "required": ["firmware_id", "organization_id"],
        "additionalProperties": False,
    }
    rollout_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
    who = "For operators: an API key (a user's token is 403)."

    def change(name: str, summary: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        request = {"requestBody": {"required": False, "content": {"application/json": {"schema": body}}}}
        return {
            "post": {
                "operationId": f"{name}_rollout",
                "tags": ["admin"],
                "summary": summary,
                "description": who,
                "parameters": [rollout_id],
                **(request if body else {}),
                "responses": _responses(
                    {"200": _json(rollout, "The rollout"), "409": _json(_ref("Error"), "Not from its state")}, 403
                ),
            }
        }

    listed = {"type": "object", "properties": {"rollouts": {"type": "array", "items": rollout}}}
    return {
        "/admin/firmware": {
            "get": {
                "operationId": "list_firmware",
                "tags": ["admin"],
                "summary": "Uploaded firmware, newest first",
                "description": who,
                "responses": _responses(
                    {
                        "200": _json(
                            {"type": "object", "properties": {"firmware": {"type": "array", "items": firmware}}},
                            "The firmware",
                        )
                    },
                    403,
                ),
            },
            "post": {
                "operationId": "add_firmware",
                "tags": ["admin"],
                "summary": "Upload a firmware record: refused unless the vendor's key signed its SHA-256",
                "description": who + " Needs FIRMWARE_SIGNING_PUBLIC_KEY (else 503).",
                "requestBody": {"required": True, "content": {"application/json": {"schema": upload}}},
                "responses": _responses(
                    {"201": _json(firmware, "Kept"), "409": _json(_ref("Error"), "This version exists")}, 403
                ),
            },
        },
        "/admin/rollouts": {
            "get": {
                "operationId": "list_rollouts",
                "tags": ["admin"],
                "summary": "Every rollout, newest first",
                "description": who,
                "responses": _responses({"200": _json(listed, "The rollouts")}, 403),
            },
            "post": {
                "operationId": "create_rollout",
                "tags": ["admin"],
                "summary": "Roll a firmware out to an organization's devices in stages",
                "description": who,
                "requestBody": {"required": True, "content": {"application/json": {"schema": new}}},
                "responses": _responses({"201": _json(rollout, "Started")}, 403),
            },
        },
        "/admin/rollouts/{id}": {
            "get": {
                "operationId": "get_rollout",
                "tags": ["admin"],
                "summary": "A rollout, its progress and every device's status in it",
                "description": who,
                "parameters": [rollout_id],
                "responses": _responses({"200": _json(rollout, "The rollout")}, 403),
            }
        },
        "/admin/rollouts/{id}/abort": change("abort", "Abort: no device is triggered any more"),
        "/admin/rollouts/{id}/resume": change(
            "resume",
            "Resume a rollout that paused itself; with a higher failure_threshold to go on past its failures",
            {
                "type": "object",
                "properties": {"failure_threshold": {"type": "number", "minimum": 0, "maximum": 1}},
                "additionalProperties": False,
            },
        ),
        "/admin/devices/{device_id}/diag": {
            "post": {
                "operationId": "device_diag",
                "tags": ["admin"],
                "summary": "Ask a device for diagnostics and wait for its answer (DIAG_WAIT)",
                "description": who,
                "parameters": [{"name": "device_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": _responses(
                    {
                        "200": _json({"type": "object"}, "The device's answer"),
                        "409": _json(_ref("Error"), "The device is offline"),
                        "504": _json(_ref("Error"), "The device did not answer in time"),
                    },
                    403,
                ),
            }
        },
    }


def _operations_paths() -> dict[str, Any]:
    limit = {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_OPS_ROWS, "default": 50},
    }
    dead_letter = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "received_at": TIME,
            "topic": {"type": "string"},
            "reason": {"type": "string"},
            "payload_bytes": {"type": "integer"},
            "payload_start": {"type": "string", "description": "the first 200 bytes as text"},
        },
        "required": ["id", "received_at", "topic", "reason"],
    }
    alert_event = {
        "type": "object",
        "properties": {
            "alert": {"type": "string"},
            "state": {"type": "string", "enum": ["firing", "resolved", "event"]},
            "component": {"type": "string"},
            "message": {"type": "string"},
            "at": TIME,
        },
    }
    operator_only = "For services and operators (an API key); frontend users get 403."

    def operation(name: str, summary: str, schema: dict[str, Any], parameters: list[Any]) -> dict[str, Any]:
        return {
            "get": {
                "operationId": f"ops_{name}",
                "tags": ["operations"],
                "summary": summary,
                "description": operator_only,
                "parameters": parameters,
                "responses": _responses({"200": _json(schema, summary)}, 403),
            }
        }

    return {
        "/api/ops/commands": operation(
            "commands",
            "The fleet's latest commands, newest first (the audit trail)",
            _ref("CommandList"),
            [limit],
        ),
        "/api/ops/dead-letters": operation(
            "dead_letters",
            "Messages the ingest set aside, with the reason, newest first",
            {
                "type": "object",
                "properties": {"dead_letters": {"type": "array", "items": dead_letter}, "total": {"type": "integer"}},
                "required": ["dead_letters", "total"],
            },
            [limit],
        ),
        "/api/ops/alerts": operation(
            "alerts",
            "Open alerts and the latest alert events of every program",
            {
                "type": "object",
                "properties": {
                    "active": {"type": "array", "items": {"type": "object"}},
                    "recent": {"type": "array", "items": alert_event},
                },
                "required": ["active", "recent"],
            },
            [],
        ),
    }


def _args_name(command: str) -> str:
    return "".join(part.capitalize() for part in command.split("_")) + "Args"


def _vin_parameter() -> dict[str, Any]:
    return {"name": "vin", "in": "path", "required": True, "schema": VIN}


def _command_operation(command: str, settings: ApiSettings) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"command_{command}",
            "tags": ["commands"],
            "summary": f"Send `{command}` to a vehicle",
            "description": (
                "Records the command (audit trail), sends it to the vehicle and waits up to `wait` seconds for "
                "the outcome: 200 with the final status, or 202 while it is still under way (poll `Location`). "
                "A repeated `Idempotency-Key` from the same caller returns the first command instead of sending "
                "another (`Idempotent-Replayed: true`)."
            ),
            "parameters": [
                _vin_parameter(),
                {
                    "name": "wait",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "number", "minimum": 0, "maximum": settings.command_timeout},
                    "description": f"seconds to wait for the outcome (default {settings.command_wait:g})",
                },
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                },
            ],
            "requestBody": {
                # Optional only where every argument has a default: an empty body is then `{}`.
                "required": bool(COMMAND_ARGS[command].model_json_schema().get("required")),
                "content": {"application/json": {"schema": _ref(_args_name(command))}},
            },
            "responses": _responses(
                {
                    "200": _json(_ref("Command"), "The command finished: succeeded, failed, rejected or expired"),
                    "202": _json(
                        _ref("Command"),
                        "Still under way: poll the `Location` (GET /api/commands/{id})",
                        {"Location": {"schema": {"type": "string"}}},
                    ),
                },
                403,
                413,
                422,
            ),
        }
    }


def build_openapi(settings: ApiSettings) -> dict[str, Any]:
    vin = _vin_parameter()
    paths: dict[str, Any] = {
        "/api/health": {
            "get": {
                "operationId": "health",
                "tags": ["operations"],
                "summary": "Per-component health (open, `Cache-Control: no-store`)",
                "security": [],
                "responses": {
                    "200": _json(_ref("Health"), "Every component is up"),
                    "503": _json(_ref("Health"), "A component is down"),
                },
            }
        },
        "/api/vehicles": {
            "get": {
                "operationId": "list_vehicles",
                "tags": ["vehicles"],
                "summary": "The vehicles the caller may see, with a summary of their latest state",
                "responses": _responses({"200": _json(_ref("VehicleList"), "The vehicles")}),
            }
        },
        "/api/vehicles/{vin}": {
            "get": {
                "operationId": "get_vehicle",
                "tags": ["vehicles"],
                "summary": "One vehicle with its latest state (every value)",
                "parameters": [vin],
                "responses": _responses({"200": _json(_ref("Vehicle"), "The vehicle")}, 403),
            }
        },
        "/api/vehicles/{vin}/telemetry": {
            "get": {
                "operationId": "vehicle_telemetry",
                "tags": ["vehicles"],
                "summary": "Telemetry history, newest first, with cursor pagination",
                "parameters": [vin, *_window_parameters()],
                "responses": _responses({"200": _json(_ref("TelemetryPage"), "One page of readings")}, 403),
            }
        },
        "/api/vehicles/{vin}/drives": _periods_operation("drives", "Drive", "drives"),
        "/api/vehicles/{vin}/charges": _periods_operation("charges", "Charge", "charging sessions"),
        "/api/vehicles/{vin}/parks": _periods_operation("parks", "Park", "parked periods"),
        "/api/drives/{id}": _detail_operation("drive", "DriveDetail", "One drive with its path"),
        "/api/charges/{id}": _detail_operation("charge", "ChargeDetail", "One charging session with its power curve"),
        "/api/vehicles/{vin}/stats": {
            "get": {
                "operationId": "vehicle_stats",
                "tags": ["history"],
                "summary": "Distance, energy used and added, efficiency, cost and drain per day, week or month",
                "parameters": [
                    vin,
                    {
                        "name": "from",
                        "in": "query",
                        "required": False,
                        "schema": TIME,
                        "description": "default: 30 days before `to`",
                    },
                    {"name": "to", "in": "query", "required": False, "schema": TIME, "description": "default: now"},
                    {
                        "name": "bucket",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": list(BUCKETS), "default": "day"},
                    },
                    {
                        "name": "tz",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "default": "UTC"},
                        "description": "IANA time zone the buckets follow, e.g. Europe/Amsterdam",
                    },
                ],
                "responses": _responses({"200": _json(_ref("Stats"), "One row per bucket and the totals")}, 403),
            }
        },
        "/api/vehicles/{vin}/commands": {
            "get": {
                "operationId": "vehicle_commands",
                "tags": ["commands"],
                "summary": "The vehicle's recent commands, newest first (the audit trail)",
                "parameters": [
                    vin,
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                    },
                ],
                "responses": _responses({"200": _json(_ref("CommandList"), "The commands")}, 403),
            }
        },
        "/api/commands/{id}": {
            "get": {
                "operationId": "get_command",
                "tags": ["commands"],
                "summary": "One command and where it is in its lifecycle",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
                ],
                "responses": _responses({"200": _json(_ref("Command"), "The command")}, 403),
            }
        },
        "/api/vehicles/{vin}/live": {
            "get": {
                "operationId": "vehicle_live",
                "tags": ["live"],
                "summary": "WebSocket: the vehicle's state changes as they happen",
                "description": (
                    "Upgrade to a WebSocket. Browsers cannot set headers on WebSockets: offer the subprotocols "
                    "`vehicle-backend.v1` and `access_token.<jwt or API key>` (the API selects the first and never "
                    "echoes the token), or pass `?access_token=` (it then lands in access logs). "
                    'The first message is `{"type": "snapshot", "vehicles": '
                    '[...]}`; then one `{"type": "telemetry", "vin", "key", "value", "received_at"}` '
                    "per value inside the telemetry contract. The server closes with 4401 when the token "
                    "expires (reconnect with a fresh one), 4403 when the user's grants change (reconnect: the "
                    "new stream follows what the user may see now) and 1013 when the client reads too slowly."
                ),
                "parameters": [
                    vin,
                    {"name": "access_token", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
                "responses": _responses({"101": {"description": "Switching to the WebSocket protocol"}}, 403),
            }
        },
        "/api/live": {
            "get": {
                "operationId": "fleet_live",
                "tags": ["live"],
                "summary": "WebSocket: state changes of every vehicle the caller may see",
                "description": "As `/api/vehicles/{vin}/live`, for all the caller's vehicles on one connection.",
                "parameters": [
                    {"name": "access_token", "in": "query", "required": False, "schema": {"type": "string"}}
                ],
                "responses": _responses({"101": {"description": "Switching to the WebSocket protocol"}}),
            }
        },
    }
    for command in sorted(COMMAND_ARGS):
        paths[f"/api/vehicles/{{vin}}/commands/{command}"] = _command_operation(command, settings)
    paths |= _operations_paths()
    paths |= _account_paths()
    paths |= _organization_paths()
    paths |= _device_paths()
    paths |= _admin_paths()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Vehicle backend API",
            "version": "1.0.0",
            "description": (
                "State, history, commands and a live stream for MG / SAIC iSMART vehicles. Users authenticate "
                "with their Supabase session (`Authorization: Bearer <access token>`) and reach only the vehicles "
                "`user_vehicles` gives them; services use an API key (`X-API-Key`). Every error is "
                '`{"error": {"code", "message", "details"}}`.'
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}, {"apiKey": []}],
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": _schemas(),
        },
        "paths": paths,
    }


def docs_page(spec: dict[str, Any]) -> str:
    """A page that needs nothing from the internet: every operation with its parameters and responses."""
    rows = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            params = ", ".join(f"{p['name']} ({p['in']})" for p in op.get("parameters", [])) or "—"
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            # A named schema by its name, an inline one by its fields (or as free-form, without any).
            body_text = (
                (body.get("$ref", "").rsplit("/", 1)[-1] or ", ".join(body.get("properties", {})) or "any JSON object")
                if body
                else "—"
            )
            codes = ", ".join(op["responses"])
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op.get('summary', ''))}</td><td>{html.escape(params)}</td>"
                f"<td>{html.escape(body_text)}</td><td>{codes}</td></tr>"
            )
    schemas = html.escape(json.dumps(spec["components"]["schemas"], indent=2))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(spec["info"]["title"])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem}}
table{{border-collapse:collapse}}pre{{background:#f6f6f6;padding:1rem}}
td,th{{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top;text-align:left}}</style>
</head><body>
<h1>{html.escape(spec["info"]["title"])} {html.escape(spec["info"]["version"])}</h1>
<p>{html.escape(spec["info"]["description"])}</p>
<p>The machine-readable document: <a href="/api/openapi.json">/api/openapi.json</a> (OpenAPI {spec["openapi"]}).</p>
<table><tr><th>method</th><th>path</th><th>what</th><th>parameters</th><th>body</th><th>responses</th></tr>
{"".join(rows)}</table>
<h2>Schemas</h2><pre>{schemas}</pre>
</body></html>"""
