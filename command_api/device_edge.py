"""The MQTT edge for directly connected devices: MQTT over WebSocket at `/mqtt`, on the API's port.

Cloud Run's ingress speaks HTTP only, so a device outside the container reaches the broker here. The
edge reads the device's CONNECT, checks its HMAC password (common/device_credentials.py) against the
registry, and records the password's time so that it cannot be used again. It then connects to the
broker as the `devices` user with the device id as client id, and passes bytes both ways unchanged.
The broker's ACL (`devices/%c/...`) holds the device to its own topics. A revoked device's
connection is closed at once, by whichever API replica holds it (`device_revoked`); a connection
whose password has left its two hour windows is closed too (4401), and the device reconnects with a
fresh one.

Refusals are CONNACKs, as a broker gives them: 1 for a protocol other than MQTT 3.1.1, 3 while the
registry cannot be read, 4 for wrong, expired or replayed credentials and unknown devices, 5 for a
revoked one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
from aiohttp import WSMsgType, web
from prometheus_client import CollectorRegistry, Counter, Gauge

from command_api import mqtt_connect
from common import device_credentials, topics
from common.account_secrets import AccountCipher, CipherError
from common.database import DATABASE_ERRORS
from common.settings import DEVICES_USER, MqttSettings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
READ_CHUNK = 64 * 1024
MAX_MESSAGE = 4 * 1024 * 1024 + 16  # the brokers' max_packet_size, and a frame header
REVOKED, PASSWORD_EXPIRED = 4403, 4401  # WebSocket close codes, as the live streams' 403 and 401


class DeviceEdge:
    def __init__(
        self, pool: asyncpg.Pool, cipher: AccountCipher, mqtt: MqttSettings, registry: CollectorRegistry
    ) -> None:
        if mqtt.devices_password is None:
            raise ValueError("MQTT_DEVICES_PASSWORD is not set: the edge connects devices as that broker user")
        endpoint = mqtt.endpoint()
        if endpoint.transport != "tcp":
            raise ValueError("the device edge needs a broker reachable over MQTT (mqtt:// or mqtts://)")
        self.pool, self.cipher = pool, cipher
        self._broker = (endpoint.host, endpoint.port, mqtt.tls_context())
        self._password = mqtt.devices_password.get_secret_value()
        self.connections: dict[str, set[asyncio.Event]] = {}
        """Per device, what cuts each of its connections (a device may hold more than one briefly)."""
        self.refused = Counter(
            "api_device_connections_refused",
            "Device CONNECTs the edge refused, by CONNACK code",
            ["code"],
            registry=registry,
        )
        Gauge("api_device_connections", "Devices connected through this edge", registry=registry).set_function(
            lambda: sum(len(held) for held in self.connections.values())
        )
        self._closing = False

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("mqtt", "mqttv3.1"), max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        try:
            connect, rest = await asyncio.wait_for(self._read_connect(ws), CONNECT_TIMEOUT)
        except (TimeoutError, mqtt_connect.MalformedConnect, ConnectionError) as exc:
            log.info("device edge: closing a connection without a valid CONNECT (%s)", exc or type(exc).__name__)
            await ws.close()
            return ws
        code, device_id, signed_at = await self._authenticate(connect)
        if code != mqtt_connect.ACCEPTED:
            self.refused.labels(str(code)).inc()
            with contextlib.suppress(ConnectionError):
                await ws.send_bytes(mqtt_connect.connack(code))
            await ws.close()
            return ws
        assert device_id is not None
        valid_until = (signed_at // device_credentials.WINDOW + 2) * device_credentials.WINDOW
        await self._relay(ws, device_id, connect, rest, valid_until)
        return ws

    async def _read_connect(self, ws: web.WebSocketResponse) -> tuple[mqtt_connect.Connect, bytes]:
        buffer = b""
        async for message in ws:
            if message.type != WSMsgType.BINARY:
                raise mqtt_connect.MalformedConnect("MQTT over WebSocket is sent in binary frames")
            buffer += message.data
            parsed = mqtt_connect.parse(buffer)
            if parsed is not None:
                connect, used = parsed
                return connect, buffer[used:]
        raise ConnectionError("closed before its CONNECT")

    async def _authenticate(self, connect: mqtt_connect.Connect) -> tuple[int, str | None, int]:
        """The CONNACK code, and for an accepted device its id and when it signed its password."""
        if connect.protocol_level != mqtt_connect.PROTOCOL_LEVEL:
            return mqtt_connect.UNACCEPTABLE_PROTOCOL, None, 0
        device_id = connect.username or ""
        if not topics.DEVICE_ID.match(device_id) or connect.password is None:
            log.info("device edge: refused a CONNECT whose user name is not a device id")
            return mqtt_connect.BAD_CREDENTIALS, None, 0
        try:
            async with self.pool.acquire() as conn:
                row = await conn.fetchrow(
                    "SELECT secret_encrypted, last_auth_ts, revoked_at FROM devices WHERE device_id = $1", device_id
                )
                if row is None:
                    log.info("device edge: refused unknown device %s", device_id)
                    return mqtt_connect.BAD_CREDENTIALS, None, 0
                if row["revoked_at"] is not None:
                    log.info("device edge: refused revoked device %s", device_id)
                    return mqtt_connect.NOT_AUTHORIZED, None, 0
                secret = self.cipher.decrypt(row["secret_encrypted"])
                checked = device_credentials.check(
                    secret, device_id, connect.password.decode(errors="replace"), time.time(), row["last_auth_ts"]
                )
                if isinstance(checked, device_credentials.Refusal):
                    log.info("device edge: refused device %s: %s", device_id, checked.reason)
                    return mqtt_connect.BAD_CREDENTIALS, None, 0
                # Two connections racing with one password: only the first records it.
                taken = await conn.fetchval(
                    "UPDATE devices SET last_auth_ts = $2 WHERE device_id = $1 AND last_auth_ts < $2"
                    " AND revoked_at IS NULL RETURNING true",
                    device_id,
                    checked,
                )
        except (*DATABASE_ERRORS, CipherError) as exc:
            log.warning("device edge: cannot check device %s (%s)", device_id, exc)
            return mqtt_connect.SERVER_UNAVAILABLE, None, 0
        if not taken:
            log.info("device edge: refused device %s: replayed password", device_id)
            return mqtt_connect.BAD_CREDENTIALS, None, 0
        return mqtt_connect.ACCEPTED, device_id, checked

    async def _relay(
        self, ws: web.WebSocketResponse, device_id: str, connect: mqtt_connect.Connect, rest: bytes, valid_until: int
    ) -> None:
        """Until either side leaves, the device is revoked, or its password leaves its windows (then
        it reconnects with a fresh one: a password is not a session for ever)."""
        host, port, tls = self._broker
        try:
            reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        except OSError as exc:
            log.warning("device edge: the broker is unreachable (%s); device %s must retry", exc, device_id)
            await ws.close()
            return
        writer.write(mqtt_connect.encode(connect.with_identity(device_id, DEVICES_USER, self._password)) + rest)
        cut = asyncio.Event()
        self.connections.setdefault(device_id, set()).add(cut)
        if await self._revoked(device_id):  # between its check and now: the notification may have passed
            cut.set()
        log.info("device %s connected through the edge", device_id)

        async def device_to_broker() -> None:
            async for message in ws:
                if message.type != WSMsgType.BINARY:
                    return
                writer.write(message.data)
                await writer.drain()

        async def broker_to_device() -> None:
            while data := await reader.read(READ_CHUNK):
                await ws.send_bytes(data)

        tasks = [
            asyncio.create_task(device_to_broker()),
            asyncio.create_task(broker_to_device()),
            asyncio.create_task(cut.wait()),
        ]
        expired = False
        try:
            done, _ = await asyncio.wait(tasks, timeout=valid_until - time.time(), return_when=asyncio.FIRST_COMPLETED)
            expired = not done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            if cut.is_set() and not self._closing:
                await ws.close(code=REVOKED, message=b"device revoked")
            elif expired:
                await ws.close(code=PASSWORD_EXPIRED, message=b"password expired: reconnect with a fresh one")
            else:
                await ws.close()
            held = self.connections.get(device_id, set())
            held.discard(cut)
            if not held:
                self.connections.pop(device_id, None)
            log.info("device %s disconnected from the edge", device_id)

    async def _revoked(self, device_id: str) -> bool:
        try:
            async with self.pool.acquire() as conn:
                return bool(
                    await conn.fetchval("SELECT revoked_at IS NOT NULL FROM devices WHERE device_id = $1", device_id)
                )
        except DATABASE_ERRORS:
            return False  # the check at CONNECT passed; the notification still cuts it

    def disconnect(self, device_id: str) -> None:
        """Revoked: cut the device's connections now (the broker then publishes its will)."""
        for cut in self.connections.get(device_id, ()):
            log.warning("device %s revoked: closing its connection", device_id)
            cut.set()

    def close_all(self) -> None:
        self._closing = True
        for device_id in list(self.connections):
            for cut in self.connections.get(device_id, ()):
                cut.set()
