"""The live stream: one MQTT subscription to the fleet's telemetry, fanned out to every WebSocket
client allowed to see the vehicle, however many listen.

Each client has a bounded queue and its own sender task, so a slow client never holds up the
others: when its queue is full it is closed (1013, try again later) instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiomqtt
from aiohttp import WSCloseCode, web

from command_api.auth import WEBSOCKET_PROTOCOL
from common import topics
from common.values import decode, is_vin, to_json

log = logging.getLogger(__name__)

CLIENT_QUEUE = 1000
TOKEN_EXPIRED = 4401
"""The close code when the token a stream was opened with expires: reconnect with a fresh one (as HTTP 401)."""
SKIPPED_SEGMENTS = frozenset({topics.COMMAND_SEGMENT})
UPSTREAM_REPLIES = (f"/{topics.SET_SUFFIX}", f"/{topics.RESULT_SUFFIX}")  # the upstream /set topics and their replies


@dataclass(eq=False)
class LiveClient:
    ws: web.WebSocketResponse
    vins: frozenset[str] | None
    """The vehicles this client follows; None: every vehicle (a service on the fleet stream)."""
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))

    def wants(self, vin: str) -> bool:
        return self.vins is None or vin in self.vins

    async def send_loop(self) -> None:
        while True:
            text = await self.queue.get()
            await self.ws.send_str(text)


class LiveHub:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.clients: set[LiveClient] = set()
        self._closing: set[asyncio.Task[bool]] = set()

    def subscription(self) -> tuple[str, int]:
        return topics.vehicles_filter(self.prefix, "#"), 0

    def on_message(self, message: aiomqtt.Message) -> None:
        """Fan a telemetry message out; commands, the upstream /set topics and replies are skipped."""
        if not self.clients:  # the whole fleet's telemetry arrives here: nothing to do for nobody
            return
        parsed = topics.parse_vehicle_topic(self.prefix, message.topic.value)
        if parsed is None or parsed.path.split("/", 1)[0] in SKIPPED_SEGMENTS or parsed.path.endswith(UPSTREAM_REPLIES):
            return
        payload = message.payload if isinstance(message.payload, bytes) else b""
        if not payload or not is_vin(parsed.vin):
            return
        try:
            value: Any = to_json(decode(parsed.path, payload))
        except (ValueError, UnicodeDecodeError):
            return  # outside the telemetry contract: never relayed (the ingest dead-letters it)
        text = json.dumps(
            {
                "type": "telemetry",
                "vin": parsed.vin,
                "key": parsed.path,
                "value": value,
                "received_at": datetime.now(UTC).isoformat(),
            }
        )
        for client in list(self.clients):
            if client.wants(parsed.vin):
                try:
                    client.queue.put_nowait(text)
                except asyncio.QueueFull:
                    log.warning("live client too slow (%d messages queued); closing it", CLIENT_QUEUE)
                    self.clients.discard(client)
                    task = asyncio.create_task(client.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow"))
                    self._closing.add(task)  # held until done: the loop keeps only weak references
                    task.add_done_callback(self._closing.discard)

    async def serve(
        self,
        request: web.Request,
        vins: frozenset[str] | None,
        first: dict[str, Any],
        expires_at: float | None = None,
    ) -> web.WebSocketResponse:
        """Run one client until it goes: the current state first, then every change; a stream opened
        with a token ends when the token expires (authorization is not a snapshot)."""
        ws = web.WebSocketResponse(heartbeat=30, protocols=(WEBSOCKET_PROTOCOL,))
        await ws.prepare(request)
        client = LiveClient(ws, vins)
        await ws.send_str(json.dumps(first, default=str))
        self.clients.add(client)
        sender = asyncio.create_task(client.send_loop())
        if expires_at is not None:
            expiry = asyncio.get_running_loop().call_later(max(0.0, expires_at - time.time()), self._expire, client)
            sender.add_done_callback(lambda _task: expiry.cancel())
        try:
            async for _message in ws:  # clients only listen; reading keeps the connection's pings going
                pass
        finally:
            self.clients.discard(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
                await sender
        return ws

    def _expire(self, client: LiveClient) -> None:
        self.clients.discard(client)
        task = asyncio.create_task(client.ws.close(code=TOKEN_EXPIRED, message=b"token expired"))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close_all(self) -> None:
        for client in list(self.clients):
            await client.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
