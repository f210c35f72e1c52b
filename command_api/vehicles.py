"""Reads of vehicles and their latest state, limited to what the caller may see."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from command_api.auth import Principal
from command_api.errors import ApiError
from common.database import Connection

VEHICLE_COLUMNS = """
SELECT v.vin, v.account, v.brand, v.model, v.name, v.first_seen, v.last_seen,
       s.ts, s.received_at, s.soc, s.range_km, s.latitude, s.longitude, s.speed_kmh,
       s.locked, s.charging, s.available, s.state
FROM vehicles v LEFT JOIN vehicle_state s USING (vin)
"""


def nest_state(flat: dict[str, Any]) -> dict[str, Any]:
    """`{"drivetrain/soc": 80}` -> `{"drivetrain": {"soc": 80}}`, following the topic tree."""
    nested: dict[str, Any] = {}
    for key in sorted(flat):
        node = nested
        *parents, leaf = key.split("/")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # a value and a subtree share a name: keep both
                child = node[part] = {"value": child}
            node = child
        if isinstance(node.get(leaf), dict):
            node[leaf]["value"] = flat[key]
        else:
            node[leaf] = flat[key]
    return nested


def vehicle_json(row: asyncpg.Record, *, full_state: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "vin": row["vin"],
        "account": row["account"],
        "brand": row["brand"],
        "model": row["model"],
        "name": row["name"],
        "first_seen": row["first_seen"],
        "last_seen": row["last_seen"],
        "state": None,
    }
    if row["ts"] is not None:
        state: dict[str, Any] = {
            "ts": row["ts"],
            "received_at": row["received_at"],
            "soc": row["soc"],
            "range_km": row["range_km"],
            "latitude": row["latitude"],
            "longitude": row["longitude"],
            "speed_kmh": row["speed_kmh"],
            "locked": row["locked"],
            "charging": row["charging"],
            "available": row["available"],
        }
        if full_state:
            state["values"] = nest_state(json.loads(row["state"]))
        body["state"] = state
    return body


async def list_vehicles(conn: Connection, principal: Principal) -> list[dict[str, Any]]:
    if principal.user_id is None:
        rows = await conn.fetch(VEHICLE_COLUMNS + " ORDER BY v.vin")
    else:
        rows = await conn.fetch(
            VEHICLE_COLUMNS
            + " JOIN vehicle_access va ON va.vin = v.vin AND va.user_id = $1 AND va.current ORDER BY v.vin",
            principal.user_id,
        )
    return [vehicle_json(r, full_state=False) for r in rows]


async def get_vehicle(conn: Connection, vin: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(VEHICLE_COLUMNS + " WHERE v.vin = $1", vin)
    return None if row is None else vehicle_json(row, full_state=True)


@dataclass(frozen=True, slots=True)
class Window:
    """The readings of a car the caller may see: from `since` to `until` (None: unbounded)."""

    since: datetime | None = None
    until: datetime | None = None

    def holds(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (self.until is None or moment < self.until)


async def authorize(
    conn: Connection,
    principal: Principal,
    vin: str,
    *,
    must_exist: bool = True,
    act: bool = False,
    current: bool = False,
) -> Window:
    """403 when `vehicle_access` (the user's own grants and their organizations' cars, migration
    0014) does not give a user this vehicle, or gives it only to view and `act` (a command) is asked,
    or gives only its past (a car sold from the organization's account) and `current` (its latest
    state) or `act` is asked; 404 when it does not exist (`must_exist=False`: the caller's read tells).

    Returns the window of readings the caller may see: through an organization, while the car was
    its account's, so that a car sold and linked again never shows one owner's readings to the other."""
    window = Window()
    if principal.user_id is not None:
        access = await conn.fetchrow(
            "SELECT role, since, until, current FROM vehicle_access WHERE user_id = $1 AND vin = $2",
            principal.user_id,
            vin,
        )
        if access is None:
            raise ApiError(403, "forbidden", f"you have no access to vehicle {vin}")
        if (act or current) and not access["current"]:
            raise ApiError(403, "forbidden", f"vehicle {vin} is no longer yours: only its history until then is")
        if act and access["role"] == "viewer":
            raise ApiError(403, "forbidden", f"you may view vehicle {vin}; commands need the operator or owner role")
        window = Window(access["since"], access["until"])
    if must_exist and not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM vehicles WHERE vin = $1)", vin):
        raise ApiError(404, "unknown_vehicle", f"no vehicle with VIN {vin}")
    return window


async def readable_vehicle(conn: Connection, principal: Principal, vin: str) -> dict[str, Any]:
    """One vehicle with its full state, for a caller allowed to see it (403 / 404 otherwise)."""
    await authorize(conn, principal, vin, must_exist=False, current=True)
    vehicle = await get_vehicle(conn, vin)
    if vehicle is None:
        raise ApiError(404, "unknown_vehicle", f"no vehicle with VIN {vin}")
    return vehicle


async def visible_vins(conn: Connection, principal: Principal) -> frozenset[str] | None:
    """The vehicles a user may see; None for a service (all of them)."""
    if principal.user_id is None:
        return None
    rows = await conn.fetch("SELECT vin FROM vehicle_access WHERE user_id = $1 AND current", principal.user_id)
    return frozenset(r["vin"] for r in rows)
