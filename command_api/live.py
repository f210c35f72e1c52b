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

from aiohttp import WSCloseCode, web

from command_api.auth import WEBSOCKET_PROTOCOL, Principal
from common import topics
from common.values import decode, is_vin, to_json

log = logging.getLogger(__name__)

CLIENT_QUEUE = 1000
TOKEN_EXPIRED = 4401
"""The close code when the token a stream was opened with expires: reconnect with a fresh one (as HTTP 401)."""
GRANTS_CHANNEL = "user_vehicles_changed"
"""Migration 0012's triggers notify it with the user's id when their grants change."""
GRANTS_CHANGED = 4403
"""The close code when the user's grants change: reconnect for the stream of what they may see now (as HTTP 403)."""
SKIPPED_SEGMENTS = frozenset({topics.COMMAND_SEGMENT})
UPSTREAM_REPLIES = (f"/{topics.SET_SUFFIX}", f"/{topics.RESULT_SUFFIX}")  # the upstream /set topics and their replies


@dataclass(eq=False)
class LiveClient:
    ws: web.WebSocketResponse
    vins: frozenset[str] | None
    """The vehicles this client follows; None: every vehicle (a service on the fleet stream)."""
    user_id: str | None = None
    """The user whose token opened the stream (None for an API key): their grants bound it."""
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

    def on_message(self, topic: str, payload: bytes) -> None:
        """Fan a telemetry message out; commands, the upstream /set topics and replies are skipped."""
        if not self.clients:  # the whole fleet's telemetry arrives here: nothing to do for nobody
            return
        parsed = topics.parse_vehicle_topic(self.prefix, topic)
        if parsed is None or parsed.path.split("/", 1)[0] in SKIPPED_SEGMENTS or parsed.path.endswith(UPSTREAM_REPLIES):
            return
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
        self._deliver(text, [client for client in self.clients if client.wants(parsed.vin)])

    def _deliver(self, text: str, clients: list[LiveClient]) -> None:
        """To each client's own queue; a client too slow to keep it from filling is closed."""
        for client in clients:
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                log.warning("live client too slow (%d messages queued); closing it", CLIENT_QUEUE)
                self._close(client, WSCloseCode.TRY_AGAIN_LATER, b"too slow")

    def device_subscriptions(self) -> list[tuple[str, int]]:
        return [(topics.device_filter(topics.DEVICE_TELEMETRY), 0), (topics.device_filter(topics.DEVICE_STATUS), 0)]

    def on_device_message(self, topic: str, payload: bytes) -> None:
        """A directly connected device's report, to the streams opened on that device (never to the
        fleet's: a device is no vehicle). The ingest has validated nothing yet: only JSON objects
        (telemetry) and online/offline pass."""
        parsed = topics.parse_device_topic(topic)
        followers = [c for c in self.clients if c.vins is not None and parsed and parsed.device_id in c.vins]
        if parsed is None or not followers:
            return
        if parsed.key == topics.DEVICE_STATUS:
            if payload not in (b"online", b"offline"):
                return
            body: Any = {"type": "status", "online": payload == b"online"}
        else:
            try:
                value = json.loads(payload)
            except (ValueError, UnicodeDecodeError, RecursionError):
                return
            if not isinstance(value, dict):
                return
            body = {"type": "telemetry", "payload": value}
        body |= {"device_id": parsed.device_id, "received_at": datetime.now(UTC).isoformat()}
        self._deliver(json.dumps(body), followers)

    async def serve(
        self, request: web.Request, vins: frozenset[str] | None, first: dict[str, Any], principal: Principal
    ) -> web.WebSocketResponse:
        """Run one client until it goes: the current state first, then every change. Authorization is
        not a snapshot: a stream opened with a token ends when the token expires (4401) or when the
        user's grants change (4403; reconnecting gives the stream of what the user may see now)."""
        ws = web.WebSocketResponse(heartbeat=30, protocols=(WEBSOCKET_PROTOCOL,))
        await ws.prepare(request)
        client = LiveClient(ws, vins, principal.subject if principal.kind == "user" else None)
        expires_at = principal.expires_at
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
        self._close(client, TOKEN_EXPIRED, b"token expired")

    def grants_changed(self, user_id: str) -> None:
        """A user's grants changed (`user_vehicles`; an empty id: anyone's): end their streams."""
        for client in list(self.clients):
            if client.user_id is not None and user_id in ("", client.user_id):
                self._close(client, GRANTS_CHANGED, b"grants changed")

    def _close(self, client: LiveClient, code: int, reason: bytes) -> None:
        self.clients.discard(client)
        task = asyncio.create_task(client.ws.close(code=code, message=reason))
        self._closing.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._closing.discard)

    async def close_all(self) -> None:
        for client in list(self.clients):
            await client.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
