"""Which gateway replica polls an account: a PostgreSQL session advisory lock per account.

SAIC allows one session per account, so no two replicas may poll it at once. The lock is held on a
connection of its own, and PostgreSQL frees it the moment that session ends: a replica killed with
-9 loses its accounts as soon as the kernel closes its sockets, and another replica takes them at
its next look (GATEWAY_ACCOUNT_SYNC_INTERVAL). A replica that loses its connection (the database
restarted, the network failed) stops polling the account at once, since it no longer holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging

import asyncpg

from common.database import DATABASE_ERRORS

log = logging.getLogger(__name__)


def lock_key(account: str) -> int:
    """A stable signed 64-bit key per account (pg_advisory_lock takes a bigint)."""
    digest = hashlib.sha256(f"saic-account:{account}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AccountLease:
    def __init__(self, account: str, connection: asyncpg.Connection) -> None:
        self.account = account
        self._connection = connection
        self.lost = asyncio.Event()
        connection.add_termination_listener(lambda _: self.lost.set())

    @classmethod
    async def take(cls, dsn: str, account: str) -> AccountLease | None:
        """The account's lease, or None while another replica holds it (or the database is away)."""
        try:
            connection = await asyncpg.connect(dsn, timeout=10)
        except DATABASE_ERRORS as exc:
            log.warning("cannot reach the database to lease %s: %s", account, exc)
            return None
        try:
            taken = await connection.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(account))
        except DATABASE_ERRORS as exc:
            log.warning("cannot lease %s: %s", account, exc)
            taken = False
        if not taken:
            await connection.close()
            return None
        return cls(account, connection)

    async def check(self) -> bool:
        """Still held? A round trip on the lease's connection: a silent network failure shows here."""
        if self.lost.is_set():
            return False
        try:
            await asyncio.wait_for(self._connection.fetchval("SELECT 1"), 10)
        except DATABASE_ERRORS as exc:  # TimeoutError among them
            log.error("lost the lease of %s: %s", self.account, exc)
            self.lost.set()
            with contextlib.suppress(Exception):
                self._connection.terminate()
        return not self.lost.is_set()

    async def release(self) -> None:
        with contextlib.suppress(*DATABASE_ERRORS):
            await self._connection.close(timeout=5)  # ends the session: the lock goes with it
        self.lost.set()
