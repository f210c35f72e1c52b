"""PostgreSQL access shared by the ingest and the API: the pool and the repo's SQL migrations."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from common.settings import DatabaseSettings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
type Connection = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
"""A plain connection or one borrowed from a pool."""

DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)
"""What a database call raises when PostgreSQL is down, slow or refuses: retry later, never crash.
InternalClientError included: a pooled connection the server terminated as it stopped ("cannot
switch to state 12; another operation (2) is in progress"), seen in an outage test under load."""

_MIGRATION_LOCK = 0x5A1C_0001  # pg_advisory_xact_lock key: one migrator at a time


async def create_pool(settings: DatabaseSettings, *, min_size: int = 1, max_size: int = 5) -> asyncpg.Pool:
    """A pool; `DATABASE_STATEMENT_CACHE_SIZE=0` behind a transaction pooler (Supavisor port 6543)."""
    return await asyncpg.create_pool(
        settings.url.get_secret_value(),
        min_size=min_size,
        max_size=max_size,
        statement_cache_size=settings.statement_cache_size,
        command_timeout=30,
        reset=_no_session_state,
    )


async def _no_session_state(_conn: asyncpg.Connection) -> None:
    """Released connections skip asyncpg's reset query (`RESET ALL`, `UNLISTEN *`, ...), a round trip
    on every release: the programs keep no session state (locks are transaction-scoped, settings
    `SET LOCAL`, a listener removes its LISTEN itself). asyncpg still rolls back an open transaction."""


async def apply_migrations(pool: asyncpg.Pool, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the not-yet-applied `*.sql` files in name order; returns the versions applied."""
    applied: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        # DDL is transactional in PostgreSQL: all migrations land together or not at all.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for path in sorted(directory.glob("*.sql")):  # noqa: ASYNC240 - a few small files, once at start
            if path.stem not in done:
                await conn.execute(path.read_text(encoding="utf-8"))
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", path.stem)
                applied.append(path.stem)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    return applied
