"""Patches to amqtt's per-connection objects (amqtt 0.12.1, pinned in pyproject.toml).

amqtt constructs its protocol handler, sessions and packet headers itself, so the broker cannot
reach them by subclassing; each patch below replaces one method, and tests/broker/ holds a test for
each, on both backends:
- the first packet read whole, within CONNECT_TIMEOUT, its protocol level checked (MQTT 5 refused
  with return code 1), and the credentials checked before any session is touched;
- no packet over `max_packet_size`;
- a silent client dropped after 1.5 x its keep-alive, so that its will fires;
- an unacknowledged QoS 1 message kept for its persistent session;
- every PUBLISH read before the connection ends handled to the end;
- a session's state without a `transitions.Machine` of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Callable, Coroutine
from typing import Any

from amqtt.adapters import BufferReader
from amqtt.errors import MQTTError, NoDataError
from amqtt.mqtt.connack import NOT_AUTHORIZED, UNACCEPTABLE_PROTOCOL_VERSION, ConnackPacket
from amqtt.mqtt.packet import CONNECT, MQTTFixedHeader
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import OUTGOING, Session
from transitions import MachineError

KEEPALIVE_GRACE = 1.5  # MQTT 3.1.1 section 3.1.2.10: disconnect after 1.5 x keep-alive of silence
CONNECT_TIMEOUT = 5.0

PROTOCOL_LEVEL_311 = 4

_original_init_from_connect = BrokerProtocolHandler.init_from_connect
_original_fixed_header = MQTTFixedHeader.from_stream
_original_handle_publish = BrokerProtocolHandler.handle_publish
_publish_work: set[asyncio.Future[None]] = set()
_original_qos1_flow = BrokerProtocolHandler._handle_qos1_message_flow
_timeout_tasks: set[asyncio.Task[None]] = set()


class PacketTooLarge(Exception):
    """Not an MQTTError: amqtt's reader loop skips those and reads on, out of step with the stream."""


async def _fixed_header_within(reader: Any, *, max_packet_size: int) -> MQTTFixedHeader | None:
    """amqtt reads whatever length a packet declares; refuse one over max_packet_size (Mosquitto's
    directive) before its body is read."""
    header = await _original_fixed_header(reader)
    if header is not None and header.remaining_length > max_packet_size:
        raise PacketTooLarge(f"a packet of {header.remaining_length} bytes, over max_packet_size {max_packet_size}")
    return header


def _protocol(body: bytes) -> tuple[bytes, int]:
    """The protocol name and level at the start of a CONNECT's variable header."""
    length = int.from_bytes(body[:2])
    return body[2 : 2 + length], body[2 + length] if len(body) > 2 + length else -1


async def _read_connect(reader: Any, writer: Any) -> BufferReader:
    """The first packet, whole, if it is a CONNECT that amqtt can parse. amqtt parsed an MQTT 5
    CONNECT as a 3.1.1 one, lost its place in the fields and waited for bytes that never came."""
    header = await MQTTFixedHeader.from_stream(reader)
    if header is None:
        raise MQTTError("the connection closed before its CONNECT")
    if header.packet_type != CONNECT:
        raise MQTTError(f"the first packet is of type {header.packet_type}, not a CONNECT")
    body = await reader.read(header.remaining_length)
    name, level = _protocol(body)
    if name not in (b"MQTT", b"MQIsdp"):
        raise MQTTError(f"not MQTT: protocol name {name!r}")
    if level != PROTOCOL_LEVEL_311:
        # MQTT-3.1.2-2: a 3.1.1 server answers an unsupported level with return code 1, then closes.
        await ConnackPacket.build(0, UNACCEPTABLE_PROTOCOL_VERSION).to_stream(writer)
        raise MQTTError(f"MQTT protocol level {level} refused: this broker speaks 3.1.1 (level 4) only")
    return BufferReader(header.to_bytes() + body)


async def _close(writer: Any) -> None:
    """amqtt's close drains first, which raises when the peer has already gone."""
    with contextlib.suppress(OSError):
        await writer.close()


async def _init_from_connect_then_authenticate(
    reader: Any,
    writer: Any,
    plugins_manager: Any,
    loop: asyncio.AbstractEventLoop | None = None,
    *,
    authenticate: Callable[[Session], bool],
    max_keepalive: int,
) -> tuple[BrokerProtocolHandler, Session]:
    """amqtt's CONNECT reading, bounded in time and size, then the credentials checked before the
    broker touches any session: amqtt looked up, deleted or took over the session of the CONNECT's
    client id before it authenticated, so one CONNECT with a taken id and a wrong password cut a
    program off."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            connect = await _read_connect(reader, writer)
            handler, session = await _original_init_from_connect(connect, writer, plugins_manager, loop)
    except TimeoutError:
        await _close(writer)
        raise MQTTError(f"no CONNECT within {CONNECT_TIMEOUT:g}s") from None
    except asyncio.IncompleteReadError:
        await _close(writer)
        raise MQTTError("the connection closed in the middle of its CONNECT") from None
    except (MQTTError, NoDataError, PacketTooLarge, OSError) as exc:
        await _close(writer)
        raise MQTTError(str(exc) or type(exc).__name__) from None
    if not authenticate(session):
        with contextlib.suppress(OSError):
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
        await _close(writer)
        raise MQTTError(f"refused client {session.client_id}: bad credentials")
    # The reader loop times out after `keep_alive` seconds of silence: give the grace the spec asks for.
    if session.keep_alive > 0:
        session.keep_alive = math.ceil(min(session.keep_alive, max_keepalive) * KEEPALIVE_GRACE)
    return handler, session


async def _qos1_flow_keeping_the_unacknowledged(self: BrokerProtocolHandler, app_message: Any) -> None:
    """amqtt drops an outgoing QoS 1 message from the session whatever happens, so one in flight to
    a subscriber that dies before its PUBACK was never redelivered (MQTT-4.4.0-1). Put it back: the
    persistent session's next connection resends it, marked DUP."""
    try:
        await _original_qos1_flow(self, app_message)
    except (asyncio.CancelledError, TimeoutError):
        session = self.session
        if (
            session is not None
            and not session.clean_session
            and app_message.direction == OUTGOING
            and app_message.puback_packet is None
        ):
            session.inflight_out[app_message.packet_id] = app_message
        raise


def _handle_publish_to_the_end(self: BrokerProtocolHandler, packet: Any) -> Coroutine[Any, Any, None]:
    """amqtt's reader makes a task per PUBLISH and cancels those not yet started when the connection
    ends: the tail of a burst sent just before a DISCONNECT vanished, QoS 1 messages included (49,978
    of 50,000 from `mosquitto_pub -l`). Start the work here, as the reader parses the packet, in
    packet order; the reader's task only waits for it, and its cancellation leaves the work running."""
    work = asyncio.ensure_future(_original_handle_publish(self, packet))
    _publish_work.add(work)
    work.add_done_callback(_publish_work.discard)
    return _wait_for(work)


async def _wait_for(work: asyncio.Future[None]) -> None:
    await asyncio.shield(work)


def _close_on_keepalive_timeout(self: BrokerProtocolHandler) -> None:
    """amqtt never dropped a silent client, so a dead client's will never fired."""
    task = asyncio.ensure_future(self.handle_connection_closed())
    _timeout_tasks.add(task)
    task.add_done_callback(_timeout_tasks.discard)


class SessionState:
    """A session's state, where amqtt built a whole `transitions.Machine` for each session (about
    12 KB, a third of what an idle connection cost). The same states, transitions and callbacks."""

    __slots__ = ("_session", "state")

    def __init__(self, session: Session) -> None:
        self._session = session
        self.state = "new"

    def connect(self) -> None:
        if self.state == "connected":
            raise MachineError("Can't trigger event connect from state connected!")
        self.state = "connected"
        self._session._on_enter_connected()

    def disconnect(self) -> None:
        self.state = "disconnected"
        self._session._on_enter_disconnected()

    def is_connected(self) -> bool:
        return self.state == "connected"


def _init_session_state(self: Session) -> None:
    self.transitions = SessionState(self)


def install(*, authenticate: Callable[[Session], bool], max_keepalive: int, max_packet_size: int) -> None:
    MQTTFixedHeader.from_stream = functools.partial(_fixed_header_within, max_packet_size=max_packet_size)
    BrokerProtocolHandler.init_from_connect = functools.partial(
        _init_from_connect_then_authenticate, authenticate=authenticate, max_keepalive=max_keepalive
    )
    BrokerProtocolHandler._handle_qos1_message_flow = _qos1_flow_keeping_the_unacknowledged
    BrokerProtocolHandler.handle_publish = _handle_publish_to_the_end
    BrokerProtocolHandler.handle_read_timeout = _close_on_keepalive_timeout
    Session._init_states = _init_session_state
