"""The Supabase sink through the real `supabase` client, against the PostgREST-compatible test server
on a real PostgreSQL (emulated PostgREST: see tests/postgrest_server.py for what it covers)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from common import topics
from common.settings import SettingsError
from ingest.app import choose_sink
from ingest.cache import TelemetryCache, VehicleSnapshot
from ingest.dead_letters import DeadLetter, DeadLetters
from ingest.flusher import Flusher
from ingest.rows import TELEMETRY_COLUMNS
from ingest.settings import IngestSettings
from ingest.sink import SinkError
from ingest.spool import Spool
from tests.ingest.conftest import ANON_KEY, SERVICE_ROLE_KEY, prepare_supabase_database, supabase_sink
from tests.postgrest_server import PostgrestServer

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def reading(vin: str, seconds: int, soc: float) -> VehicleSnapshot:
    values = {topics.DRIVETRAIN_SOC: soc, topics.LOCATION_LATITUDE: 52.5}
    ts = T0 + timedelta(seconds=seconds)
    return VehicleSnapshot(vin, "acct", ts, ts, False, values, frozenset(values))  # type: ignore[arg-type]


async def test_request_shape(postgrest: PostgrestServer) -> None:
    sink = await supabase_sink(postgrest)
    try:
        result = await sink.write([reading("VIN1", 0, 80.0), reading("VIN1", 5, 79.0)])
    finally:
        await sink.close()
    assert (result.vehicles, result.state_rows, result.telemetry_rows) == (1, 1, 2)
    rpc, history = postgrest.requests
    for request in (rpc, history):
        assert request.method == "POST"
        assert request.headers["apikey"] == SERVICE_ROLE_KEY
        assert request.headers["Authorization"] == f"Bearer {SERVICE_ROLE_KEY}"
        assert request.headers["Content-Profile"] == "public"
    assert rpc.path == "/rest/v1/rpc/ingest_vehicle_states"
    assert set(rpc.body) == {"vehicle_rows", "state_rows"}
    assert rpc.body["state_rows"][0]["ts"] == (T0 + timedelta(seconds=5)).isoformat()
    assert history.path == "/rest/v1/rpc/ingest_telemetry"
    assert set(history.body) == {"telemetry_rows"}
    assert {frozenset(row) for row in history.body["telemetry_rows"]} == {frozenset(TELEMETRY_COLUMNS)}
    assert [row["soc"] for row in history.body["telemetry_rows"]] == [80.0, 79.0]


async def test_a_replay_inserts_nothing_and_an_older_reading_moves_nothing(
    postgrest: PostgrestServer, database_url: str
) -> None:
    sink = await supabase_sink(postgrest)
    batch = [reading(f"V{i % 4}", i, float(i)) for i in range(40)]
    try:
        first = await sink.write(batch)
        again = await sink.write(batch)
        older = await sink.write([reading("V0", -60, 1.0)])
    finally:
        await sink.close()
    assert (first.telemetry_rows, again.telemetry_rows) == (40, 0)
    assert older.state_rows == 0
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM vehicle_telemetry") == 41
        assert await conn.fetchval("SELECT soc FROM vehicle_state WHERE vin = 'V0'") == 36.0
    finally:
        await conn.close()


async def test_a_late_value_completes_its_row_and_the_stored_state_reads_back(
    postgrest: PostgrestServer, database_url: str
) -> None:
    """Through the same SQL as the PostgreSQL sink (migration 0010), over RPC."""
    location = {topics.LOCATION_LATITUDE: 52.5}
    first = VehicleSnapshot("V1", "acct", T0, T0, False, location, frozenset(location))  # type: ignore[arg-type]
    late = reading("V1", 0, 61.0)
    sink = await supabase_sink(postgrest)
    try:
        await sink.write([first])
        completed = await sink.write([late])
        again = await sink.write([late])
        [stored] = await sink.stored_states_page("")
    finally:
        await sink.close()
    assert (completed.telemetry_rows, again.telemetry_rows) == (1, 0)
    assert (stored["vin"], stored["account"], stored["state"][topics.DRIVETRAIN_SOC]) == ("V1", "acct", 61.0)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT soc, latitude FROM vehicle_telemetry")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [(61.0, 52.5)]


async def test_dead_letters_keep_their_raw_bytes(postgrest: PostgrestServer, database_url: str) -> None:
    sink = await supabase_sink(postgrest)
    raw = b"\xff\x00not json"
    try:
        await sink.write_dead_letters([DeadLetter(T0, "saic/x/vehicles/V/drivetrain/soc", raw, "not a number")])
    finally:
        await sink.close()
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT payload, reason FROM dead_letters")
    finally:
        await conn.close()
    assert row is not None
    assert (bytes(row["payload"]), row["reason"]) == (raw, "not a number")


async def test_a_vehicle_registered_ahead_of_its_readings(postgrest: PostgrestServer, database_url: str) -> None:
    sink = await supabase_sink(postgrest)
    try:
        await sink.write_vehicles([{"vin": "VIN9", "account": "a@b.c", "brand": None, "model": None, "last_seen": T0}])
    finally:
        await sink.close()
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT account, last_seen FROM vehicles WHERE vin = 'VIN9'")
        states = await conn.fetchval("SELECT count(*) FROM vehicle_state")
    finally:
        await conn.close()
    assert row is not None
    assert (row["account"], row["last_seen"], states) == ("a@b.c", T0, 0)


async def test_missing_migrations_are_named(database_url: str) -> None:
    await prepare_supabase_database(database_url)  # Supabase's roles, but none of our migrations
    server = PostgrestServer(database_url, {SERVICE_ROLE_KEY: "service_role"})
    await server.start()
    sink = await supabase_sink(server)
    try:
        with pytest.raises(SinkError, match=r"PGRST202 .*apply the SQL files in migrations/"):
            await sink.ready()
    finally:
        await sink.close()
        await server.stop()


async def test_a_wrong_key_is_named(postgrest: PostgrestServer) -> None:
    sink = await supabase_sink(postgrest, key="not-the-key")
    try:
        with pytest.raises(SinkError, match=r"PGRST301 .*service-role"):
            await sink.ready()
    finally:
        await sink.close()


async def test_grants_keep_other_roles_out(postgrest: PostgrestServer) -> None:
    """The anon key reaches PostgREST but PostgreSQL refuses it: grants go to service_role only."""
    sink = await supabase_sink(postgrest, key=ANON_KEY)
    try:
        with pytest.raises(SinkError, match="42501 permission denied"):
            await sink.ready()
        with pytest.raises(SinkError, match="42501 permission denied"):
            await sink.write_dead_letters([DeadLetter(T0, "t", b"x", "r")])
    finally:
        await sink.close()


async def test_an_outage_spools_and_writes_back(postgrest: PostgrestServer, database_url: str, tmp_path: Path) -> None:
    sink = await supabase_sink(postgrest)
    cache = TelemetryCache("saic")
    flusher = Flusher(cache, sink, Spool(tmp_path, 1_000_000), DeadLetters())
    root = "saic/acct/vehicles/LSJTEST0000000007"
    try:
        postgrest.unavailable = True
        cache.add(f"{root}/drivetrain/soc", b"55")
        assert await flusher.flush() is None
        assert len(flusher.spool.files()) == 1
        postgrest.unavailable = False
        cache.add(f"{root}/drivetrain/soc", b"54")
        assert await flusher.flush() is not None
        assert flusher.spool.files() == []
    finally:
        await sink.close()
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT soc FROM vehicle_state WHERE vin = 'LSJTEST0000000007'") == 54.0
    finally:
        await conn.close()


async def test_signed_in_users_read_only_their_vehicles(postgrest: PostgrestServer, database_url: str) -> None:
    """The Supabase migration's RLS policies, as PostgREST applies them (role plus JWT claims)."""
    sink = await supabase_sink(postgrest)
    try:
        await sink.write([reading("VIN_A", 0, 50.0), reading("VIN_B", 0, 60.0)])
    finally:
        await sink.close()
    alice, bob = uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO user_vehicles (user_id, vin) VALUES ($1, 'VIN_A'), ($2, 'VIN_B')", alice, bob)
        for table in ("drives", "charges", "parks"):  # derived history (the PostgreSQL sink derives it)
            await conn.execute(
                f"INSERT INTO {table} (vin, start_ts, end_ts, duration_s, readings) "
                "SELECT vin, now(), now(), 0, 1 FROM vehicles"
            )

        async def visible(user: uuid.UUID | None, table: str) -> list[str]:
            async with conn.transaction():
                await conn.execute("SET LOCAL ROLE authenticated")
                claims = json.dumps({"sub": str(user)} if user else {})
                await conn.execute("SELECT set_config('request.jwt.claims', $1, true)", claims)
                return [r["vin"] for r in await conn.fetch(f"SELECT vin FROM {table} ORDER BY vin")]

        for table in ("vehicles", "vehicle_state", "vehicle_telemetry", "user_vehicles", "drives", "charges", "parks"):
            assert await visible(alice, table) == ["VIN_A"], table
            assert await visible(bob, table) == ["VIN_B"], table
            assert await visible(None, table) == [], table
        # Carol sees VIN_B as a viewer of the organization whose SAIC account has it (migration 0014).
        carol = uuid.uuid4()
        org = await conn.fetchval("INSERT INTO organizations (name) VALUES ('fleet') RETURNING id")
        await conn.execute("INSERT INTO memberships VALUES ($1, $2, 'viewer')", org, carol)
        account = await conn.fetchval(
            "INSERT INTO accounts (username, password_encrypted, organization_id)"
            " VALUES ('a@b.c', 'x', $1) RETURNING id",
            org,
        )
        await conn.execute("INSERT INTO account_vehicles VALUES ($1, 'VIN_B', '2000-01-01')", account)  # since long ago
        for table in ("vehicles", "vehicle_state", "vehicle_telemetry", "drives", "charges", "parks"):
            assert await visible(carol, table) == ["VIN_B"], table
        # Once the car is the organization's only from later on, its earlier history is not Carol's.
        await conn.execute("UPDATE account_vehicles SET since = now() + interval '1 hour'")
        for table in ("vehicle_telemetry", "drives", "charges", "parks"):
            assert await visible(carol, table) == [], table
        assert await visible(carol, "vehicles") == ["VIN_B"]
        assert await visible(bob, "vehicle_telemetry") == ["VIN_B"]  # granted directly: all of it
        # Sold from the organization's account before its readings: neither they nor its state are Carol's.
        await conn.execute("UPDATE account_vehicles SET since = '2000-01-01', until = '2000-01-02'")
        for table in ("vehicle_state", "vehicle_telemetry", "drives", "charges", "parks"):
            assert await visible(carol, table) == [], table
        await conn.execute("UPDATE account_vehicles SET until = now() + interval '1 hour'")
        assert await visible(carol, "vehicle_telemetry") == ["VIN_B"]  # its readings while it was hers
        assert await visible(carol, "vehicle_state") == []  # but not its state: the car is no longer hers
        assert await visible(alice, "vehicles") == ["VIN_A"]  # not a member: nothing more
        async with conn.transaction():  # the view is not readable directly: it holds everyone's grants
            await conn.execute("SET LOCAL ROLE authenticated")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT * FROM vehicle_access")
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE anon")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT * FROM vehicle_state")
        async with conn.transaction():  # the ingest's bookkeeping is no user's business
            await conn.execute("SET LOCAL ROLE authenticated")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT * FROM vehicle_derivation")
        unprotected = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND NOT rowsecurity"
        )
        published = await conn.fetch("SELECT tablename FROM pg_publication_tables WHERE pubname = 'supabase_realtime'")
    finally:
        await conn.close()
    assert unprotected == []
    assert [r["tablename"] for r in published] == ["vehicle_state"]


def test_sink_choice() -> None:
    auto = IngestSettings.from_env({})
    assert choose_sink(auto, {"DATABASE_URL": "postgresql://x"}) == "postgres"
    supabase = {"NEXT_PUBLIC_SUPABASE_URL": "https://p.supabase.co", "SUPABASE_SERVICE_ROLE_KEY": "k"}
    assert choose_sink(auto, supabase) == "supabase"
    assert choose_sink(auto, {**supabase, "DATABASE_URL": "postgresql://x"}) == "postgres"
    assert choose_sink(IngestSettings.from_env({"INGEST_SINK": "supabase"}), {"DATABASE_URL": "x"}) == "supabase"
    with pytest.raises(SettingsError, match="no database configured"):
        choose_sink(auto, {"SUPABASE_URL": "https://p.supabase.co"})
