"""Both sinks on a real PostgreSQL: asyncpg directly, and the real `supabase` client through the
PostgREST-compatible test server (tests/postgrest_server.py) with Supabase's roles in place."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from common.database import apply_migrations, create_pool
from common.settings import DatabaseSettings
from ingest.postgres_sink import PostgresSink
from ingest.settings import SupabaseSettings
from ingest.sink import Sink
from ingest.supabase_sink import SupabaseSink
from tests.postgrest_server import PostgrestServer

SERVICE_ROLE_KEY = "sb_secret_test-service-role-key"
ANON_KEY = "sb_publishable_test-anon-key"

SUPABASE_ROLES = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN BYPASSRLS;
    END IF;
END
$$;
"""

# What a Supabase project has before our migrations run: auth.uid() from the request's JWT claims
# (as PostgREST sets them) and the Realtime publication.
SUPABASE_DATABASE = """
CREATE SCHEMA IF NOT EXISTS auth;
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('request.jwt.claims', true)::json->>'sub', '')::uuid $$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
CREATE PUBLICATION supabase_realtime;
"""


async def prepare_supabase_database(url: str) -> None:
    """Give a fresh database Supabase's roles, auth schema and publication, then our migrations."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SUPABASE_ROLES)
        await conn.execute(SUPABASE_DATABASE)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def running_postgrest(database_url: str) -> AsyncIterator[PostgrestServer]:
    """Supabase's roles, schema and publication, our migrations, and the server in front."""
    await prepare_supabase_database(database_url)
    pool = await create_pool(DatabaseSettings.from_env({"DATABASE_URL": database_url}))
    try:
        await apply_migrations(pool)
    finally:
        await pool.close()
    server = PostgrestServer(database_url, {SERVICE_ROLE_KEY: "service_role", ANON_KEY: "anon"})
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def postgrest(database_url: str) -> AsyncIterator[PostgrestServer]:
    async with running_postgrest(database_url) as server:
        yield server


async def supabase_sink(server: PostgrestServer, key: str = SERVICE_ROLE_KEY) -> SupabaseSink:
    return await SupabaseSink.connect(
        SupabaseSettings.from_env({"SUPABASE_URL": server.url, "SUPABASE_SERVICE_ROLE_KEY": key})
    )


@pytest.fixture(params=["postgres", "supabase"])
async def sink(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Sink]:
    """Each sink on a database with the migrations applied."""
    async with contextlib.AsyncExitStack() as stack:
        created: Sink
        if request.param == "postgres":
            created = PostgresSink(await create_pool(DatabaseSettings.from_env({"DATABASE_URL": database_url})))
        else:
            created = await supabase_sink(await stack.enter_async_context(running_postgrest(database_url)))
        await created.ready()
        yield created
        await created.close()
