"""Latest-state reads from memory: served without a query, forgotten when PostgreSQL says a change
was committed, by every replica, and never past what the caller may see."""

from __future__ import annotations

import asyncpg

from command_api.routes import STATE_CACHE
from command_api.state_cache import LatestStateCache
from common.settings import DatabaseSettings, MqttSettings
from tests.command_api.conftest import ALICE, SERVICE_KEY, VIN_A, VIN_B, Client, secured_api, user_token
from tests.helpers import wait_until


async def set_soc(db: DatabaseSettings, vin: str, soc: float, *, notify: bool = True) -> None:
    conn = await asyncpg.connect(db.url.get_secret_value())
    try:
        async with conn.transaction():
            if not notify:  # triggers off: a change no listener hears of, to tell memory from the database
                await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(
                "INSERT INTO vehicle_state (vin, ts, received_at, soc) VALUES ($1, now(), now(), $2) "
                "ON CONFLICT (vin) DO UPDATE SET soc = EXCLUDED.soc",
                vin,
                soc,
            )
    finally:
        await conn.close()


async def soc_of(api: Client, vin: str = VIN_A) -> float:
    status, body, _ = await api.call("GET", f"/api/vehicles/{vin}", key=SERVICE_KEY)
    assert status == 200, body
    return float(body["state"]["soc"])


def cache_of(api: Client) -> LatestStateCache:
    return api.app[STATE_CACHE]


async def listening(api: Client) -> None:
    await wait_until(lambda: cache_of(api).listening, what="the latest-state cache listening")


async def heard_change(api: Client, before: int) -> None:
    """The notification of a committed change reached the API (it arrives asynchronously: a read
    made before it could be cached and then forgotten)."""
    await wait_until(lambda: cache_of(api).generation > before, what="the change notification heard")


async def test_reads_come_from_memory_until_a_change_is_committed(api: Client, seeded: DatabaseSettings) -> None:
    await listening(api)
    before = cache_of(api).generation
    await set_soc(seeded, VIN_A, 10)
    await heard_change(api, before)
    assert await soc_of(api) == 10
    hits = cache_of(api).hits

    await set_soc(seeded, VIN_A, 20, notify=False)
    assert await soc_of(api) == 10, "the second read must come from memory"
    assert cache_of(api).hits == hits + 1

    await set_soc(seeded, VIN_A, 30)

    async def fresh() -> bool:
        return await soc_of(api) == 30

    await wait_until(fresh, timeout=2, what="the committed change in the API's read")


async def test_a_lost_listener_makes_the_cache_forget(api: Client, seeded: DatabaseSettings) -> None:
    """Changes committed while nobody listens are unheard: the cache starts over when it listens again."""
    await listening(api)
    before = cache_of(api).generation
    await set_soc(seeded, VIN_A, 10)
    await heard_change(api, before)
    assert await soc_of(api) == 10
    await set_soc(seeded, VIN_A, 40, notify=False)
    assert await soc_of(api) == 10
    sessions = cache_of(api).sessions

    conn = await asyncpg.connect(seeded.url.get_secret_value())
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'"
        )
    finally:
        await conn.close()
    assert killed == 1
    await wait_until(lambda: cache_of(api).sessions > sessions, what="the listener back")
    assert await soc_of(api) == 40


async def test_every_replica_hears_of_a_change(mqtt_settings: MqttSettings, seeded: DatabaseSettings) -> None:
    async with secured_api(mqtt_settings, seeded) as first, secured_api(mqtt_settings, seeded) as second:
        await listening(first)
        await listening(second)
        await set_soc(seeded, VIN_A, 10)
        assert (await soc_of(first), await soc_of(second)) == (10, 10)
        await set_soc(seeded, VIN_A, 60)

        async def both_fresh() -> bool:
            return (await soc_of(first), await soc_of(second)) == (60, 60)

        await wait_until(both_fresh, timeout=2, what="the change in both replicas")


async def test_a_cached_vehicle_is_still_only_for_who_may_see_it(api: Client, seeded: DatabaseSettings) -> None:
    await listening(api)
    await set_soc(seeded, VIN_B, 70)
    assert await soc_of(api, VIN_B) == 70  # now in memory
    status, body, _ = await api.call("GET", f"/api/vehicles/{VIN_B}", token=user_token(ALICE))
    assert status == 403, body
    status, body, _ = await api.call("GET", f"/api/vehicles/{VIN_A}", token=user_token(ALICE))
    assert status == 200, body
