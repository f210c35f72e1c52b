"""Small helpers for tests that wait on real servers."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import aiomqtt
import asyncpg
from aiohttp import web

from common.mqtt import MqttConnection, observe_drop, run_until_cancelled
from common.settings import MqttSettings
from local_stack.ports import free_port


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, interval: float = 0.1, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(interval)


class ObservedClient(aiomqtt.Client):
    """A test's client: a connection that dropped while the test was not reading its messages (a
    broker stopped under it) leaves no "Future exception was never retrieved" at the end of the run."""

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await super().__aexit__(*exc_info)
        finally:
            observe_drop(self)


def client(settings: MqttSettings, component: str, client_id: str | None = None, **kwargs: object) -> aiomqtt.Client:
    """A real MQTT client logged in as one of the programs' broker users."""
    endpoint = settings.endpoint()
    return ObservedClient(
        endpoint.host,
        endpoint.port,
        transport=endpoint.transport,
        websocket_path=endpoint.path,
        tls_context=settings.tls_context(),
        username=component,
        password=settings.password_for(component),
        identifier=client_id or f"test-{component}-{time.monotonic_ns()}",
        protocol=aiomqtt.ProtocolVersion.V311,
        **kwargs,  # type: ignore[arg-type]
    )


async def collect(mqtt: aiomqtt.Client, count: int, timeout: float = 5.0) -> list[aiomqtt.Message]:
    """The next `count` messages (fewer if the timeout passes first)."""
    received: list[aiomqtt.Message] = []

    async def gather() -> None:
        async for message in mqtt.messages:
            received.append(message)
            if len(received) >= count:
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(gather(), timeout)
    return received


async def latest_on(
    mqtt: aiomqtt.Client, topics: set[str], timeout: float = 5.0, *, live_only: bool = False
) -> dict[str, bytes]:
    """The latest payload on each topic, gathered until every one of `topics` has been seen (or the
    timeout passes). Counting messages instead races: retained and live messages on other topics of
    the same subscription arrive in no fixed order. `live_only`: what publishers sent since the
    subscription, not the retained copies it brought."""
    latest: dict[str, bytes] = {}

    async def gather() -> None:
        async for message in mqtt.messages:
            if live_only and message.retain:
                continue
            latest[message.topic.value] = bytes(message.payload)
            if topics <= latest.keys():
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(gather(), timeout)
    return latest


@contextlib.asynccontextmanager
async def running(connection: MqttConnection) -> AsyncIterator[MqttConnection]:
    """The connection's loop for the block; closed and stopped after it, whatever happened."""
    task = asyncio.create_task(run_until_cancelled(connection))
    try:
        yield connection
    finally:
        await connection.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def serving(app: web.Application, port: int | None = None) -> AsyncIterator[str]:
    """Serve an aiohttp app on 127.0.0.1 (a free port unless given); yields its base URL."""
    port = port or free_port()
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def generic_plan_scans(
    pool: asyncpg.Pool, statement: str, types: Sequence[str], tables: Sequence[str], fill: Sequence[str] = ()
) -> set[tuple[str, str]]:
    """The (scan, table) pairs of the generic plan PostgreSQL keeps for a prepared `statement` (as it
    soon does for a driver's), over new copies of `tables`: empty unless the `fill` statements, run
    first, put rows in and analyse them. Everything is rolled back."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            for table in tables:  # a temporary table comes first in the search path
                await conn.execute(f"CREATE TEMPORARY TABLE {table} (LIKE public.{table} INCLUDING ALL)")
            for sql in fill:
                await conn.execute(sql)
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            parameters = f"({', '.join(types)})" if types else ""
            await conn.execute(f"PREPARE probe {parameters} AS {statement}")
            nulls = f"({', '.join('NULL' for _ in types)})" if types else ""
            plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE probe {nulls}"))
            await conn.execute("DEALLOCATE probe")
        finally:
            await transaction.rollback()
    nodes = _plan_nodes(plan[0]["Plan"])
    return {(node["Node Type"], node["Relation Name"]) for node in nodes if "Relation Name" in node}


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)
