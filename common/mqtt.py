"""One long-lived MQTT connection per program: connect with backoff, subscribe, dispatch, reconnect.

Programs start before or alongside the broker under supervisord, so they wait for it with
exponential backoff instead of sleeping a fixed time. The component's status topic is set
`online` (retained) on every connect and carries the `offline` last will.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import aiomqtt
import paho.mqtt.client as paho_mqtt
from paho.mqtt import _packet
from paho.mqtt.client import PUBACK, PUBLISH
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from common.backoff import Backoff
from common.settings import MqttSettings

log = logging.getLogger(__name__)

type MessageHandler = Callable[[aiomqtt.Message], Awaitable[None]]
type ConnectHook = Callable[[], Coroutine[Any, Any, None]]
type ReceiveHook = Callable[[str, bytes, bool], None]
"""Called with a message's topic, payload and retain flag, before its PUBACK is sent."""
type SendHook = Callable[[], None]


class Received(NamedTuple):
    """A message as a receive hook got it, for a handler that takes it up later."""

    topic: str
    payload: bytes
    retain: bool


PUBLISH_TIMEOUT = 10.0
PRESENCE_EVERY = 10.0
"""How often an instance renews its presence; a reader calls it stale after three silent periods."""

# aiomqtt warns on every publish beyond ten in flight; the publishers batch on purpose.
_client_log = logging.getLogger("aiomqtt")
_client_log.setLevel(logging.ERROR)


_PUBACK_SUCCESS = ReasonCode(PacketTypes.PUBACK)
_PUBACK_PROPERTIES = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]
_decode_puback = _packet.decode_puback
_PUBACK = bytes((PUBACK, 2))
"""An MQTT 3.1.1 PUBACK's fixed header; the message id follows."""


def _decode_v311_puback(header: int, packet: bytes | bytearray, protocol: MQTTProtocolVersion) -> _packet.PubackPacket:
    """paho builds a reason code and a properties object for every PUBACK, though an MQTT 3.1.1
    PUBACK carries only its message id: 28 % of a publish burst's CPU. These programs speak 3.1.1,
    so its PUBACKs share one of each (read by no one: the callbacks take the message id)."""
    if protocol != MQTTProtocolVersion.MQTTv5 and len(packet) == 2:
        return _packet.PubackPacket(int.from_bytes(packet), _PUBACK_SUCCESS, _PUBACK_PROPERTIES)
    return _decode_puback(header, packet, protocol)


_packet.decode_puback = _decode_v311_puback  # paho is pinned; tests/common/test_mqtt.py checks the two agree

_SHARED_CONDITION = threading.Condition()


class _MessageInfo(paho_mqtt.MQTTMessageInfo):
    """paho gives every message, sent or received, a `threading.Condition` of its own (1.4 µs, a
    tenth of a publish) for threads that block in `wait_for_publish()`. No program here blocks a
    thread on a message, so all share one condition; notifying every waiter keeps the call correct."""

    __slots__ = ()

    def __init__(self, mid: int) -> None:
        self.mid = mid
        self._published = False
        self._condition = _SHARED_CONDITION
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self._iterpos = 0

    def _set_as_published(self) -> None:
        with self._condition:
            self._published = True
            self._condition.notify_all()


vars(paho_mqtt)["MQTTMessageInfo"] = _MessageInfo  # what paho's MQTTMessage and publish() build


class _NoTopicCallbacks(MQTTMatcher):
    """paho looks up per-topic callbacks (`message_callback_add`) for every message it receives,
    and its matcher builds a closure that refers to itself for each lookup: six objects in a
    reference cycle per message, left to the cyclic collector, whose collections then rescanned the
    ingest's cache: without them it receives a third more messages a second (docs/benchmarks.md).
    No program here adds such a callback: the lookup finds nothing, and adding one fails loudly
    instead of being ignored."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def iter_match(self, topic: str) -> Iterator[Any]:
        return iter(())

    def __setitem__(self, key: str, value: Any) -> None:
        raise NotImplementedError("per-topic callbacks are not supported: dispatch in on_receive or on_message")


def instance_id(environ: dict[str, str] | None = None) -> str:
    """This program instance's name in presence topics: INSTANCE_ID, else host and process id."""
    raw = (environ if environ is not None else dict(os.environ)).get("INSTANCE_ID") or (
        f"{socket.gethostname()}-{os.getpid()}"
    )
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)[:64] or "instance"


MAX_PACKET_SIZE = 4 * 1024 * 1024
"""mosquitto.conf's max_packet_size: the broker closes a connection that sends a larger packet."""


class MessageTooLarge(ValueError):
    """A message the broker would refuse, and close the connection over."""


def _too_large(topic: str, payload: bytes) -> MessageTooLarge | None:
    size = len(payload) + len(topic.encode()) + 4
    if size > MAX_PACKET_SIZE:
        return MessageTooLarge(f"{topic}: a {size}-byte message is over the broker's max_packet_size")
    return None


class MqttNotConnected(Exception):
    """The broker connection is down; the caller decides whether to wait, retry or fail."""


@dataclass
class MqttOptions:
    component: str
    client_id: str
    subscriptions: Sequence[tuple[str, int]] = ()
    status_topic: str | None = None
    presence_topic: str | None = None
    """This instance's own status (`topics.instance_topic`): retained JSON renewed every
    PRESENCE_EVERY seconds while connected, cleared on a clean stop. Unlike the shared status
    topic and its last will, one instance stopping says nothing about the others."""
    clean_session: bool = True
    keepalive: int = 30
    max_inflight: int = 64
    """`publish` calls awaiting their PUBACK at once (a `publish_many` batch is not bounded). It was
    set to bound aiomqtt's and paho's scans of what is in flight; 64 keeps a loopback connection
    busy (docs/benchmarks.md, "Publishes in flight")."""
    on_connect: list[ConnectHook] = field(default_factory=list)
    on_receive: ReceiveHook | None = None
    """Called synchronously for each message before it is acknowledged (instead of `on_message`):
    what it has stored when it returns survives a crash right after the PUBACK."""
    before_send: SendHook | None = None
    """Called before any bytes leave for the broker, PUBACKs among them: a receive hook may keep
    what it stores in memory until then, and write a whole socket read's messages at once."""


class MqttConnection:
    def __init__(self, settings: MqttSettings, options: MqttOptions, on_message: MessageHandler | None = None) -> None:
        self.settings = settings
        self.options = options
        self.on_message = on_message
        self.connected = asyncio.Event()
        self.connect_count = 0
        self._client: aiomqtt.Client | None = None
        self._stop_requested = asyncio.Event()
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._in_flight = asyncio.Semaphore(options.max_inflight)
        self._acks: dict[int, asyncio.Future[None]] = {}
        """`publish_many`'s messages awaiting their PUBACK, by message id."""

    def _make_client(self) -> aiomqtt.Client:
        opts = self.options
        will = aiomqtt.Will(opts.status_topic, b"offline", qos=1, retain=True) if opts.status_topic else None
        endpoint = self.settings.endpoint()
        client = aiomqtt.Client(
            hostname=endpoint.host,
            port=endpoint.port,
            transport=endpoint.transport,
            websocket_path=endpoint.path,
            tls_context=self.settings.tls_context(),
            username=opts.component,
            password=self.settings.password_for(opts.component),
            identifier=opts.client_id,
            protocol=aiomqtt.ProtocolVersion.V311,
            will=will,
            clean_session=opts.clean_session,
            keepalive=opts.keepalive,
            max_inflight_messages=0,  # unlimited in paho: `_in_flight` bounds it, and paho skips its scan
            timeout=10,
            logger=_client_log,
        )
        client._client._on_message_filtered = _NoTopicCallbacks()
        _prepare_socket_on_open(client, opts.before_send)
        _read_whole_packets(client._client)
        _write_in_this_loop_pass(client)
        if opts.on_receive is not None:
            _receive_with(client._client, opts.on_receive)
        self._take_acks(client)
        return client

    def _take_acks(self, client: aiomqtt.Client) -> None:
        """PUBACKs for `publish_many`'s messages resolve its futures; paho handles the rest (those of
        aiomqtt's publishes). An MQTT 3.1.1 PUBACK is its message id alone."""
        paho = client._client
        handle_pubackcomp = paho._handle_pubackcomp

        def take_ack(cmd: str) -> MQTTErrorCode:
            packet = paho._in_packet["packet"]
            if cmd == "PUBACK" and len(packet) == 2 and (ack := self._acks.pop(int.from_bytes(packet), None)):
                if not ack.done():
                    ack.set_result(None)
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            return handle_pubackcomp(cmd)  # type: ignore[arg-type]

        paho._handle_pubackcomp = take_ack  # type: ignore[method-assign]

    def _fail_acks(self) -> None:
        """The connection is gone: no PUBACK will come for what `publish_many` still waits on."""
        acks, self._acks = self._acks, {}
        for ack in acks.values():
            if not ack.done():
                ack.set_exception(MqttNotConnected("the broker connection dropped before the PUBACK"))

    async def run(self) -> None:
        """Stay connected until cancelled."""
        backoff = Backoff()
        while not self._stop_requested.is_set():
            client = self._make_client()
            try:
                async with client:
                    await self._on_connected(client)
                    backoff.reset()
                    presence = asyncio.create_task(self._announce_presence(client))
                    try:
                        async for message in client.messages:
                            await self._dispatch(message)
                    finally:
                        presence.cancel()
                    # The iterator ends when the connection drops.
                    raise aiomqtt.MqttError("connection lost")
            except aiomqtt.MqttError as exc:
                self._client = None
                self.connected.clear()
                if self._stop_requested.is_set():
                    return
                delay = backoff.next_delay()
                log.warning("broker %s unavailable (%s); retrying in %.1fs", self.settings.describe(), exc, delay)
                await asyncio.sleep(delay)
            finally:
                self._client = None
                self.connected.clear()
                self._fail_acks()
                observe_drop(client)

    async def _on_connected(self, client: aiomqtt.Client) -> None:
        if self.options.subscriptions:
            # One SUBSCRIBE for all filters: after a reconnect to a persistent session the broker is
            # already sending the backlog, and each SUBACK waits behind what it has sent.
            await client.subscribe(list(self.options.subscriptions))
        self._client = client
        self.connect_count += 1
        if self.options.status_topic:
            await client.publish(self.options.status_topic, b"online", qos=1, retain=True, timeout=PUBLISH_TIMEOUT)
        log.info("connected to broker %s", self.settings.describe())
        self.connected.set()
        # In the background: a large republish must not hold up the incoming messages.
        for hook in self.options.on_connect:
            task = asyncio.create_task(hook())
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)

    async def _announce_presence(self, client: aiomqtt.Client) -> None:
        topic = self.options.presence_topic
        if topic is None:
            return
        while True:
            payload = json.dumps({"state": "online", "at": datetime.now(UTC).isoformat(), "every": PRESENCE_EVERY})
            with contextlib.suppress(aiomqtt.MqttError):  # the connection's own loop reports a drop
                await client.publish(topic, payload, qos=1, retain=True, timeout=PUBLISH_TIMEOUT)
            await asyncio.sleep(PRESENCE_EVERY)

    async def _dispatch(self, message: aiomqtt.Message) -> None:
        if self.on_message is None:
            return
        try:
            await self.on_message(message)
        except Exception:
            # One bad message must never take the connection down.
            log.exception("handler failed for a message on %s", message.topic.value)

    async def publish(self, topic: str, payload: str | bytes, *, qos: int = 1, retain: bool = False) -> None:
        """One message (QoS 0 or 1), packed and acknowledged as `publish_many` does. A command's
        request and its answers go this way; aiomqtt's publish added paho's message object and log
        line, a pending-call future and paho's locked PUBACK handling to each (docs/benchmarks.md)."""
        if qos not in (0, 1):
            raise ValueError(f"QoS {qos}: only 0 and 1 are published")
        message = (topic, payload if isinstance(payload, bytes) else payload.encode())
        async with self._in_flight:  # see MqttOptions.max_inflight
            refused = await self.publish_many([message], qos=qos, retain=retain)
        if refused:
            raise refused[0]

    async def publish_many(
        self, messages: Sequence[tuple[str, bytes]], *, qos: int = 1, retain: bool = False
    ) -> list[MessageTooLarge]:
        """Publish every message at once and wait for all their PUBACKs; returns the messages left
        out as too large, and raises MqttNotConnected or aiomqtt.MqttError when the batch did not all go.

        `publish` costs a task, a timeout and aiomqtt's bookkeeping per message, 46 µs of CPU a
        message in a burst. paho's own `publish` builds a message object with its info, and logs
        and queues a packet, for each; its PUBACK handling takes locks and calls back for each.
        Here the batch's PUBLISH packets are packed into one buffer that paho queues as one
        packet, and their PUBACKs resolve this connection's futures directly (`_take_acks`)
        (docs/benchmarks.md). They are not paho's to send again after a reconnect: the batch fails
        with MqttNotConnected, as before, and the caller republishes."""
        client = self._client
        paho = client._client if client is not None else None
        if paho is None or paho._sock is None:
            raise MqttNotConnected(f"not connected to the broker; cannot publish {len(messages)} messages")
        loop = asyncio.get_running_loop()
        too_large: list[MessageTooLarge] = []
        waiting: dict[int, asyncio.Future[None]] = {}
        packets = bytearray()
        command = PUBLISH | qos << 1 | retain
        try:
            for topic, payload in messages:
                if (refused := _too_large(topic, payload)) is not None:
                    too_large.append(refused)
                    continue
                name = _publish_topic(topic)
                length = 2 + len(name) + len(payload)
                if qos:
                    mid = self._free_mid(paho)
                    waiting[mid] = self._acks[mid] = loop.create_future()
                    length += 2
                packets.append(command)
                if length < 0x80:  # most of them: one byte
                    packets.append(length)
                else:
                    packets += remaining_length(length)
                packets += len(name).to_bytes(2) + name
                if qos:
                    packets += mid.to_bytes(2)
                packets += payload
            if packets:
                # As one queued packet, marked QoS 1 so that paho acts on nothing once it is written
                # (it would tell on_publish of a QoS 0 PUBLISH).
                paho._packet_queue(PUBLISH, packets, 0, 1)
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                if len(waiting) == 1:  # a command's request or answer: no gathering future for one
                    await next(iter(waiting.values()))
                else:
                    await asyncio.gather(*waiting.values())
        except TimeoutError:
            raise aiomqtt.MqttError(f"no PUBACK for {len(waiting)} messages within {PUBLISH_TIMEOUT:.0f} s") from None
        finally:
            for mid in waiting:
                self._acks.pop(mid, None)
        return too_large

    def _free_mid(self, paho: paho_mqtt.Client) -> int:
        """The next message id from paho's counter that neither paho nor a batch is waiting on.
        The counter wraps after 65,535: a batch's messages are acknowledged long before that."""
        for _ in range(65_535):
            mid = paho._mid_generate()
            if mid not in self._acks and mid not in paho._out_messages:
                return mid
        raise aiomqtt.MqttError("every message id awaits its PUBACK")

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)

    async def close(self) -> None:
        """Say `offline` on the status topic and disconnect (the will covers unclean exits)."""
        self._stop_requested.set()
        client = self._client
        if client is not None and self.options.presence_topic:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):  # a stopped instance leaves nothing behind
                await client.publish(self.options.presence_topic, b"", qos=1, retain=True, timeout=2)
        if client is not None and self.options.status_topic:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await client.publish(self.options.status_topic, b"offline", qos=1, retain=True, timeout=2)


def observe_drop(client: aiomqtt.Client) -> None:
    """Call once a client's `async with` has ended. aiomqtt records a dropped connection as an error
    on a future that only its message iterator reads, and its `__aexit__` leaves it unread: a drop
    that came while the owner was elsewhere (in a handler, being cancelled) would end in asyncio's
    "Future exception was never retrieved" once the client is collected. The owner has reported the
    drop or is stopping; mark it read, now or when it comes (an exit cut short by a cancellation
    leaves the connection open, to drop later)."""
    dropped = client._disconnected
    if dropped.done():
        _read_drop(dropped)
    else:
        dropped.add_done_callback(_read_drop)


def _read_drop(dropped: asyncio.Future[None]) -> None:
    if not dropped.cancelled():
        dropped.exception()


def _receive_with(paho: paho_mqtt.Client, hook: ReceiveHook) -> None:
    """Hand each QoS 0 or 1 PUBLISH to `hook`, then queue its PUBACK.

    aiomqtt's own callback only queues a message for its iterator, and paho sends the PUBACK when
    the callback returns, so a crash would lose everything still queued: the hook runs in paho's
    handling of the packet instead (aiomqtt has no hook for this, hence its private paho client;
    both are pinned, and the ingest's kill -9 test fails if this stops working). paho's handling
    decodes the packet into a message object, logs it, and calls back under two locks, half the
    cost of a message for a receiver as lean as the ingest's: here the MQTT 3.1.1 packet is read
    where it lies (docs/benchmarks.md). QoS 2, and a topic that is not UTF-8 (which the hook then
    fails on, logged), go paho's way."""
    handle_publish = paho._handle_publish

    def receive() -> MQTTErrorCode:
        command, packet = paho._in_packet["command"], paho._in_packet["packet"]
        qos = command >> 1 & 3
        if qos > 1:
            return handle_publish()
        size = int.from_bytes(packet[:2])
        try:
            topic = packet[2 : 2 + size].decode()
        except UnicodeDecodeError:
            return handle_publish()
        start = 2 + size + 2 * qos
        try:
            hook(topic, bytes(packet[start:]), bool(command & 1))
        except Exception:
            log.exception("receive hook failed for a message")
        if qos:
            paho._packet_queue(PUBACK, _PUBACK + packet[2 + size : start], 0, 0)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    paho._handle_publish = receive  # type: ignore[method-assign]
    paho.on_message = _receiver(hook)  # what paho's own handling calls


def _receiver(hook: ReceiveHook) -> Callable[[Any, Any, Any], None]:
    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        try:
            hook(message.topic, message.payload, bool(message.retain))
        except Exception:
            log.exception("receive hook failed for a message")

    return on_message


def _prepare_socket_on_open(client: aiomqtt.Client, before_send: SendHook | None) -> None:
    """Turn Nagle's algorithm off on the client's socket as soon as paho opens it, and use it
    through `BrokerSocket`.

    paho leaves it on, so each small PUBLISH or PUBACK waits for the peer's delayed ACK: about
    40 ms a hop, 88 ms for a command's round trip. aiomqtt offers no option for it, hence its
    private paho client; `on_socket_open` runs before CONNECT is written.
    """
    paho_client = client._client
    aiomqtt_callback = paho_client.on_socket_open

    def on_socket_open(paho: Any, userdata: Any, sock: Any) -> None:
        set_tcp_nodelay(sock)
        paho._sock = BrokerSocket(sock, before_send, more_queued=lambda: bool(paho._out_packet))
        if aiomqtt_callback is not None:
            aiomqtt_callback(paho, userdata, sock)

    paho_client.on_socket_open = on_socket_open


def _read_whole_packets(paho: paho_mqtt.Client) -> None:
    """Take each packet `BrokerSocket` already holds whole in one piece.

    paho reads a packet with a `recv` for its command byte, one for each byte of its length and one
    for the rest, each with its checks and its own bookkeeping in `_in_packet`: four or five calls
    into Python for a PUBACK. When the socket's buffer holds the whole packet, this parses its
    fixed header there and hands paho the packet as its own reading would have left it. A packet
    that is not all there yet, or one paho is already part way through, is paho's to read."""
    read_piecewise = paho._packet_read
    packet_handle = paho._packet_handle

    def packet_read() -> MQTTErrorCode:
        sock: Any = paho._sock  # paho types it as its own socket; on_socket_open made it a BrokerSocket
        in_packet = paho._in_packet
        if in_packet["command"] or not isinstance(sock, BrokerSocket):
            return read_piecewise()
        data, start = sock._data, sock._offset
        at, length, shift = start + 1, 0, 0
        while at < len(data) and at - start <= 4:  # MQTT's remaining length: 1 to 4 bytes
            byte = data[at]
            at += 1
            length |= (byte & 127) << shift
            shift += 7
            if not byte & 128:
                break
        else:
            return read_piecewise()  # nothing buffered, a length not all there, or a bad one
        if at + length > len(data):
            return read_piecewise()
        sock._offset = at + length
        in_packet["command"] = data[start]
        in_packet["remaining_length"] = length
        in_packet["packet"] = bytearray(data[at : at + length])
        try:
            rc = packet_handle()
        except MalformedPacket as exc:  # as paho: the connection is closed for it
            log.debug("received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        paho._in_packet = {
            "command": 0,
            "have_remaining": 0,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": 0,
            "packet": bytearray(),
            "to_process": 0,
            "pos": 0,
        }
        with paho._msgtime_mutex:
            paho._last_bytes_received = paho_mqtt.time_func()
        return rc

    paho._packet_read = packet_read  # type: ignore[method-assign]


def _write_in_this_loop_pass(client: aiomqtt.Client) -> None:
    """Write what paho queues at the end of the event loop's current pass, not on a writable event.

    paho asks for a writable-socket callback whenever it queues a packet on an idle socket.
    aiomqtt answers from any thread: `call_soon_threadsafe(add_writer)`, which costs a self-pipe
    write and read, an epoll registration and removal, and a loop pass before the first byte
    leaves, for every publish or burst of PUBACKs. On the loop's own thread, a `call_soon` writes
    instead: every packet queued in the meantime goes out in that one write (`BrokerSocket` sends
    them together). Only when the kernel takes part of it does the socket get aiomqtt's writer,
    which sends the rest as the socket drains. paho connects from an executor thread, so its
    CONNECT still goes aiomqtt's way.
    """
    paho_client = client._client
    aiomqtt_register: Any = paho_client.on_socket_register_write
    loop, loop_thread = asyncio.get_running_loop(), threading.get_ident()

    def write(paho: Any, userdata: Any, sock: Any) -> None:
        if paho.socket() is not sock:
            return  # closed or replaced since: nothing of this socket's to write
        try:
            paho.loop_write()
        except Exception as exc:  # as aiomqtt's writer: a failed write ends the connection
            if not client._disconnected.done():
                client._disconnected.set_exception(exc)
            return
        if paho.want_write():  # the socket is full: paho still counts it as registered
            aiomqtt_register(paho, userdata, sock)

    def on_socket_register_write(paho: Any, userdata: Any, sock: Any) -> None:
        if threading.get_ident() == loop_thread:
            loop.call_soon(write, paho, userdata, sock)
        else:
            aiomqtt_register(paho, userdata, sock)

    paho_client.on_socket_register_write = on_socket_register_write


RECEIVE_BUFFER = 256 * 1024
COALESCE = 64 * 1024
"""Bytes of paho's queued packets `BrokerSocket` holds for one `send`."""


class BrokerSocket:
    """paho's socket, read in large pieces and with a hook before each send.

    paho reads each packet in three or more `recv` calls (the command byte, each length byte,
    the rest), and aiomqtt calls it once per readable event: a system call and an event-loop turn
    for every few bytes. This reads what the kernel holds in one call and serves paho's small reads
    from it; `pending()` tells aiomqtt's reader, which already asks it of TLS sockets, to go on
    reading while bytes are left here.

    `before_send` runs before every send: paho queues each PUBACK when the receive hook returns,
    and writes it when the event loop finds the socket writable, after the whole read is handled.

    paho writes each packet with its own `send`: a system call per packet, and on TCP with Nagle's
    algorithm off a segment per packet that wakes the broker. While `more_queued()` says paho has
    more to write, a packet is taken into `_outgoing` instead (up to `COALESCE` bytes), and the last
    packet's send writes them all with it (plain TCP; TLS and WebSocket sockets send each packet
    as it comes). paho takes a packet as sent once `send` returns: what is held goes out within the
    same `loop_write`, before any later byte. When the kernel does not take all the held bytes, the
    rest stay held, and the send raises BlockingIOError without taking the packet it was given,
    which paho then keeps and writes again once the socket drains.
    Everything else goes to the socket itself."""

    def __init__(
        self, sock: Any, before_send: SendHook | None = None, more_queued: Callable[[], bool] | None = None
    ) -> None:
        self.sock = sock
        self._data = b""
        self._offset = 0
        self._before_send = before_send
        # Plain TCP only: TLS wants a send that could not finish retried with the same bytes.
        self._more_queued = more_queued if type(sock) is socket.socket else None
        self._outgoing = bytearray()

    def recv(self, size: int) -> bytes:
        if self._offset >= len(self._data):
            # BlockingIOError and TLS's want-read errors pass through to paho, which expects them.
            self._data = self.sock.recv(max(size, RECEIVE_BUFFER))
            self._offset = 0
        chunk = self._data[self._offset : self._offset + size]
        self._offset += len(chunk)
        return chunk

    def pending(self) -> int:
        inner = self.sock.pending() if hasattr(self.sock, "pending") else 0
        return len(self._data) - self._offset + inner

    def send(self, data: bytes) -> int:
        if self._before_send is not None:
            self._before_send()
        held = len(self._outgoing)
        if self._more_queued is not None and self._more_queued() and held + len(data) <= COALESCE:
            self._outgoing += data
            return len(data)
        if not held:
            sent: int = self.sock.send(data)
            return sent
        self._outgoing += data
        try:
            sent = self.sock.send(self._outgoing)
        finally:
            del self._outgoing[held:]  # `data` is not taken unless the kernel took it, below
        if sent <= held:  # the held bytes first, then `data` when the socket drains
            del self._outgoing[:sent]
            raise BlockingIOError(f"{held - sent} bytes of earlier packets wait for the socket")
        self._outgoing.clear()
        return sent - held

    def close(self) -> None:
        if self._outgoing:  # paho closes right after a DISCONNECT: what it counts as sent, best effort
            with contextlib.suppress(OSError):
                self.sock.send(self._outgoing)
            self._outgoing.clear()
        self.sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def _publish_topic(topic: str) -> bytes:
    """The topic as a PUBLISH carries it; ValueError for one no broker takes (as paho raises)."""
    name = topic.encode()
    if not name or b"+" in name or b"#" in name or len(name) > 65_535:
        raise ValueError(f"cannot publish to {topic!r}: a topic is 1 to 65,535 bytes, without wildcards")
    return name


def remaining_length(length: int) -> bytes:
    """A fixed header's remaining length: seven bits a byte, lowest first."""
    encoded = bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(encoded)


def set_tcp_nodelay(sock: Any) -> None:
    """TCP_NODELAY on a TCP socket (TLS included); other transports are left as they are."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def run_until_cancelled(connection: MqttConnection) -> None:
    """Run a connection as a task body; returns quietly on cancellation."""
    with contextlib.suppress(asyncio.CancelledError):
        await connection.run()
