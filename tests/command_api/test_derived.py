"""Drives, charges, parks and statistics over real HTTP, from periods the real sink derived."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg

from common.settings import DatabaseSettings
from ingest.periods import PeriodSettings
from ingest.postgres_sink import PostgresSink
from tests.command_api.conftest import BOB, SERVICE_KEY, VIN_A, Client, user_token
from tests.ingest.test_period_store import simulated_day


async def drive_history(db: DatabaseSettings) -> None:
    """Four hours of the simulated car as VIN_A, through the ingest's own sink."""
    sink = await PostgresSink.connect(db, PeriodSettings.from_env({"CHARGE_PRICE_PER_KWH": "0.25"}))
    day = [dataclasses.replace(snap, vin=VIN_A) for snap, _ in simulated_day(1, hours=4)]
    for i in range(0, len(day), 60):
        await sink.write(day[i : i + 60])
    await sink.close()


async def closed(db: DatabaseSettings, table: str) -> list[Any]:
    conn = await asyncpg.connect(db.url.get_secret_value())
    try:
        return await conn.fetch(f"SELECT * FROM {table} WHERE NOT in_progress ORDER BY start_ts DESC")
    finally:
        await conn.close()


async def test_drives_page_by_cursor_newest_first(api: Client, seeded: DatabaseSettings) -> None:
    await drive_history(seeded)
    expected = [r["id"] for r in await closed(seeded, "drives")]
    assert len(expected) >= 3
    seen: list[int] = []
    path = f"/api/vehicles/{VIN_A}/drives?limit=2"
    while True:
        status, body, _ = await api.call("GET", path, key=SERVICE_KEY)
        assert status == 200, body
        seen += [d["id"] for d in body["items"] if not d["in_progress"]]
        if body["next_cursor"] is None:
            break
        path = f"/api/vehicles/{VIN_A}/drives?limit=2&cursor={body['next_cursor']}"
    assert seen == expected
    status, drive, _ = await api.call("GET", f"/api/drives/{expected[-1]}", key=SERVICE_KEY)
    assert status == 200, drive
    assert drive["distance_km"] > 0
    assert drive["path"][0]["ts"] == drive["start_ts"]
    assert drive["path"][-1]["ts"] == drive["end_ts"]
    assert all(drive["start_ts"] <= p["ts"] <= drive["end_ts"] for p in drive["path"])


async def test_a_charge_has_its_power_curve_and_cost(api: Client, seeded: DatabaseSettings) -> None:
    await drive_history(seeded)
    [first, *_] = await closed(seeded, "charges")
    status, body, _ = await api.call("GET", f"/api/vehicles/{VIN_A}/charges", key=SERVICE_KEY)
    assert status == 200
    assert first["id"] in [c["id"] for c in body["items"]]
    status, charge, _ = await api.call("GET", f"/api/charges/{first['id']}", key=SERVICE_KEY)
    assert status == 200
    assert charge["cost"] == round(charge["energy_added_kwh"] * 0.25, 2)
    assert charge["currency"] == "EUR"
    assert max(p["power_kw"] for p in charge["curve"]) == charge["peak_power_kw"]


async def test_stats_add_up_to_the_periods(api: Client, seeded: DatabaseSettings) -> None:
    await drive_history(seeded)
    drives, charges = await closed(seeded, "drives"), await closed(seeded, "charges")
    window = "from=2026-11-29T00:00:00Z&to=2026-12-01T00:00:00Z"
    status, stats, _ = await api.call("GET", f"/api/vehicles/{VIN_A}/stats?{window}&bucket=day", key=SERVICE_KEY)
    assert status == 200, stats
    assert [item["start"][:10] for item in stats["items"]] == ["2026-11-29", "2026-11-30"]
    totals = stats["totals"]
    assert totals["drives"] == len(drives)
    assert totals["distance_km"] == round(sum(d["distance_km"] for d in drives), 3)
    assert totals["charges"] == len(charges)
    assert totals["energy_added_kwh"] == round(sum(c["energy_added_kwh"] for c in charges), 3)
    status, local, _ = await api.call(
        "GET", f"/api/vehicles/{VIN_A}/stats?{window}&bucket=week&tz=Europe/Amsterdam", key=SERVICE_KEY
    )
    assert status == 200
    assert local["items"][0]["start"].endswith("+01:00")


async def test_bad_parameters_and_other_peoples_cars(api: Client, seeded: DatabaseSettings) -> None:
    await drive_history(seeded)
    [drive, *_] = await closed(seeded, "drives")
    bob = user_token(BOB)
    for path, status, code in [
        (f"/api/vehicles/{VIN_A}/drives", 403, "forbidden"),
        (f"/api/drives/{drive['id']}", 403, "forbidden"),
        ("/api/drives/999999", 404, "unknown_drive"),
        ("/api/charges/abc", 400, "invalid_parameter"),
    ]:
        got, body, _ = await api.call("GET", path, token=bob)
        assert (got, body["error"]["code"]) == (status, code), path
    for query, text in [
        ("bucket=hour", "`bucket` must be one of day, week, month"),
        ("tz=Mars/Olympus", "`tz` must be an IANA time zone"),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "`from` must be earlier than `to`"),
        ("from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "at most 400 days"),
    ]:
        got, body, _ = await api.call("GET", f"/api/vehicles/{VIN_A}/stats?{query}", key=SERVICE_KEY)
        assert got == 400
        assert text in body["error"]["message"]
