"""amqtt as the embedded broker, hardened against the defects in shared/reference/broker.md.

- Authentication against the Mosquitto-format password file; anonymous clients refused.
- The Mosquitto-format ACL enforced on publish, subscribe and delivery, including retained
  messages (amqtt sends retained messages on connect without consulting topic plugins).
- Keep-alive enforced (amqtt never drops a silent client, so dead clients' wills never fire).
- Credentials checked as soon as the CONNECT is read: amqtt looks up, deletes or rewrites the
  session of the CONNECT's client id (and takes over its connection) before it authenticates, so
  one CONNECT with a taken client id and a wrong password silently cut a program off.
- A connection that sends no CONNECT within CONNECT_TIMEOUT is closed (amqtt waits for ever on
  garbage, an HTTP request, a TLS hello, a truncated CONNECT).
- Messages queued for an offline persistent session are delivered with RETAIN=0, as live.
- A message is delivered at min(publish QoS, subscription QoS), not at the subscription's.
- An unacknowledged QoS 1 message stays in its persistent session and is resent on reconnect.
- SIGTERM and SIGINT shut it down cleanly within a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import signal
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, override

from amqtt.broker import Broker
from amqtt.contexts import Action, BaseContext
from amqtt.errors import MQTTError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import OUTGOING, Session

from broker.acl import Access, AclFile
from broker.config import BrokerConfig
from broker.passwords import read_password_file, verify_password

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 3.0
KEEPALIVE_GRACE = 1.5  # MQTT 3.1.1 section 3.1.2.10: disconnect after 1.5 x keep-alive of silence
CONNECT_TIMEOUT = 5.0


class PasswordFileAuthPlugin(BaseAuthPlugin):
    @dataclass
    class Config:
        password_file: str

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._entries = read_password_file(Path(self.config.password_file))

    @override
    async def authenticate(self, *, session: Session) -> bool:
        username, password = session.username, session.password
        encoded = self._entries.get(username) if username else None
        if encoded is None or password is None or not verify_password(password, encoded):
            log.warning("refused client %s (user %r): bad credentials", session.client_id, username)
            return False
        return True


class AclFilePlugin(BaseTopicPlugin):
    @dataclass
    class Config:
        acl_file: str

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._acl = AclFile.load(Path(self.config.acl_file))

    @override
    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        if session is None or topic is None:
            return False
        user, client_id = session.username, session.client_id
        match action:
            case Action.PUBLISH:
                allowed = self._acl.allows(user, client_id, topic, Access.WRITE)
            case Action.SUBSCRIBE:
                allowed = self._acl.allows_subscribe(user, client_id, topic)
            case Action.RECEIVE:
                allowed = self._acl.allows(user, client_id, topic, Access.READ)
            case _:
                allowed = False
        if not allowed and action != Action.RECEIVE:
            log.warning("denied %s on %r for user %r", action, topic, user)
        return allowed


_publisher_qos: ContextVar[int | None] = ContextVar("publisher_qos", default=None)
"""The QoS of the PUBLISH being handed out, which amqtt does not pass on to its broadcast."""


class HardenedBroker(Broker):
    @override
    async def _handle_message_delivery(
        self, client_session: Session, handler: BrokerProtocolHandler, wait_deliver: asyncio.Future[Any]
    ) -> bool:
        message = wait_deliver.result()
        token = _publisher_qos.set(None if message is None else message.qos)
        try:
            return bool(await super()._handle_message_delivery(client_session, handler, wait_deliver))
        finally:
            _publisher_qos.reset(token)

    @override
    async def _broadcast_message(
        self, session: Session | None, topic: str | None, data: bytes | bytearray | None, force_qos: int | None = None
    ) -> None:
        # A message goes out at min(its PUBLISH QoS, the subscription's QoS) (MQTT 3.1.1 section 3.8.4).
        # amqtt sends at the subscription's: forcing 0 for a QoS 0 PUBLISH gives exactly the minimum.
        if force_qos is None and _publisher_qos.get() == 0:
            force_qos = 0
        await super()._broadcast_message(session, topic, data, force_qos)

    @override
    async def _publish_session_retained_messages(self, session: Session) -> None:
        # What a persistent session missed while offline ("retained" in amqtt's own words) goes
        # out as the live messages it was, RETAIN=0 (MQTT-3.3.1-9); amqtt sets RETAIN=1, and a
        # subscriber then takes a live reading or command for a retained replay.
        handler = self._get_handler(session)
        if handler is None:
            return
        sends = []
        while not session.retained_messages.empty():
            queued = await session.retained_messages.get()
            sends.append(handler.mqtt_publish(queued.topic, queued.data, queued.qos, retain=False))
        if sends:
            await asyncio.gather(*sends, return_exceptions=True)

    @override
    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        topic_filter, qos = subscription
        # On connect amqtt calls this for *every* client's filters; serve only the session's own.
        subscribers = self._subscriptions.get(topic_filter, [])
        if not any(s.client_id == session.client_id for s, _ in subscribers):
            return
        handler = self._get_handler(session)
        if handler is None:
            return
        sends = []
        for topic, retained in list(self._retained_messages.items()):
            if self._matches(topic, topic_filter) and await self._topic_filtering(session, topic, Action.RECEIVE):
                sends.append(handler.mqtt_publish(topic, retained.data, min(qos, retained.qos or qos), retain=True))
        if sends:
            await asyncio.gather(*sends, return_exceptions=True)


_original_init_from_connect = BrokerProtocolHandler.init_from_connect


async def _init_from_connect_then_authenticate(
    reader: Any,
    writer: Any,
    plugins_manager: Any,
    loop: asyncio.AbstractEventLoop | None = None,
    *,
    max_keepalive: int,
) -> tuple[BrokerProtocolHandler, Session]:
    """amqtt's CONNECT reading (amqtt 0.12.1), bounded in time, then the credentials checked before
    the broker touches any session; the keep-alive grace set here, once, on the incoming session."""
    try:
        handler, session = await asyncio.wait_for(
            _original_init_from_connect(reader, writer, plugins_manager, loop), CONNECT_TIMEOUT
        )
    except TimeoutError:
        await writer.close()
        raise MQTTError(f"no CONNECT within {CONNECT_TIMEOUT:g}s") from None
    verdicts = await plugins_manager.map_plugin_auth(session=session)
    if not verdicts or not all(verdicts.values()):
        await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
        await writer.close()
        raise MQTTError(f"refused client {session.client_id}: bad credentials")
    # The reader loop times out after `keep_alive` seconds of silence: give the grace the spec asks for.
    if session.keep_alive > 0:
        session.keep_alive = math.ceil(min(session.keep_alive, max_keepalive) * KEEPALIVE_GRACE)
    return handler, session


def _authenticate_on_connect(max_keepalive: int) -> None:
    patched = functools.partial(_init_from_connect_then_authenticate, max_keepalive=max_keepalive)
    BrokerProtocolHandler.init_from_connect = patched  # type: ignore[method-assign,assignment]


_original_qos1_flow = BrokerProtocolHandler._handle_qos1_message_flow


async def _qos1_flow_keeping_the_unacknowledged(self: BrokerProtocolHandler, app_message: Any) -> None:
    """amqtt (0.12.1) drops an outgoing QoS 1 message from the session whatever happens, so one in
    flight to a subscriber that dies before its PUBACK is never redelivered (MQTT-4.4.0-1). Put it
    back: the persistent session's next connection resends it, marked DUP."""
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


def _redeliver_unacknowledged() -> None:
    BrokerProtocolHandler._handle_qos1_message_flow = _qos1_flow_keeping_the_unacknowledged  # type: ignore[method-assign,assignment]


_timeout_tasks: set[asyncio.Task[None]] = set()


def _close_on_keepalive_timeout(self: BrokerProtocolHandler) -> None:
    task = asyncio.ensure_future(self.handle_connection_closed())
    _timeout_tasks.add(task)
    task.add_done_callback(_timeout_tasks.discard)


def _enforce_keepalive() -> None:
    BrokerProtocolHandler.handle_read_timeout = _close_on_keepalive_timeout  # type: ignore[method-assign]


def amqtt_config(config: BrokerConfig) -> dict[str, Any]:
    if config.allow_anonymous:
        raise ValueError("allow_anonymous true is not supported: every program has its own credentials")
    plugins: dict[str, Any] = {
        f"{__name__}.PasswordFileAuthPlugin": {"password_file": str(config.password_file)},
        f"{__name__}.AclFilePlugin": {"acl_file": str(config.acl_file)},
    }
    if config.sys_interval > 0:
        plugins["amqtt.plugins.sys.broker.BrokerSysPlugin"] = {"sys_interval": config.sys_interval}
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{config.bind}:{config.port}"}},
        "plugins": plugins,
    }


async def serve(config: BrokerConfig, stop: asyncio.Event) -> None:
    _enforce_keepalive()
    _authenticate_on_connect(config.max_keepalive)
    _redeliver_unacknowledged()
    broker = HardenedBroker(amqtt_config(config))
    await broker.start()
    log.info("amqtt broker listening on %s:%s", config.bind, config.port)
    await stop.wait()
    log.info("shutting down amqtt broker")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(broker.shutdown(), SHUTDOWN_TIMEOUT)


async def run(config: BrokerConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(config, stop)
