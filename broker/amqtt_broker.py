"""amqtt as the embedded broker, made to behave like Mosquitto (amqtt 0.12.1, pinned).

What differs from amqtt as shipped, each with a test in tests/broker/test_brokers.py that runs
against both backends:

- Authentication against the Mosquitto-format password file, before any session is touched
  (broker.amqtt_protocol); anonymous clients refused; no CONNECT within 5 s closes the connection.
- The Mosquitto-format ACL on publish, subscribe and delivery, retained messages included, checked
  in line: amqtt's plugins made every check a task, one per subscriber per message.
- A PUBLISH is routed when it arrives, to the subscriptions that exist then. amqtt routed it later,
  from a queue, to whoever had subscribed by then, so a subscriber arriving meanwhile got the retained
  copy and the same message again as live: a retained command taken for a fresh one.
- Retained messages go out when a subscription is made, in order before any later live message, at
  min(QoS); never replayed on reconnect (amqtt walked every filter of every client per CONNECT).
- A message is delivered at min(publish QoS, subscription QoS), once per client however many of its
  filters match (Mosquitto 2's choice), and what an offline persistent session missed goes out with
  RETAIN=0 (MQTT-3.3.1-9).
- A repeated SUBSCRIBE replaces the subscription's QoS; an unsubscribed filter leaves the routing
  table (amqtt kept every filter ever subscribed, and routing slowed with each).
- A CONNECT with a client id in use closes the older connection (MQTT-3.1.4-2), clean session or not.
- Shared subscriptions (`$share/<group>/<filter>`, as Mosquitto has them under MQTT 3.1.1): the
  members of a group take its messages in turn, so that ingest replicas split the stream.
- `$SYS/broker/...` counters published by the broker itself, without amqtt's `$SYS` plugin (which
  serialised every packet a second time to count its bytes, and raised on malformed ones).
- SIGTERM and SIGINT shut it down cleanly within a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, override

import amqtt
from amqtt.broker import Broker, RetainedApplicationMessage
from amqtt.contexts import Action
from amqtt.errors import BrokerError
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session
from transitions import MachineError

from broker import amqtt_protocol
from broker.acl import Access, AclFile
from broker.config import BrokerConfig
from broker.passwords import read_password_file, verify_password

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 3.0
REFUSED = 0x80  # SUBACK return code
SHARE_PREFIX = "$share/"

_publisher_qos: ContextVar[int | None] = ContextVar("publisher_qos", default=None)
"""The QoS of the PUBLISH being routed, which amqtt does not pass on to its broadcast."""

Targets = list[tuple[Session, int]]


def shared_filter(topic_filter: str) -> tuple[str, str] | None:
    """(group, filter) of a shared subscription's `$share/<group>/<filter>`, else None."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return None
    group, _, real_filter = topic_filter.removeprefix(SHARE_PREFIX).partition("/")
    return (group, real_filter) if group and real_filter else None


class HardenedBroker(Broker):
    def __init__(self, config: BrokerConfig) -> None:
        if config.allow_anonymous:
            raise ValueError("allow_anonymous true is not supported: every program has its own credentials")
        # No plugins: authentication, the ACL and $SYS are done here, without a task per check.
        listener = {"type": "tcp", "bind": f"{config.bind}:{config.port}"}
        super().__init__({"listeners": {"default": listener}, "plugins": {}})
        self._acl = AclFile.load(config.acl_file)
        self._passwords = read_password_file(config.password_file)
        self._group_turns: dict[str, int] = {}
        self.publishes_received = 0
        self.publishes_sent = 0

    def authenticate(self, session: Session) -> bool:
        username, password = session.username, session.password
        encoded = self._passwords.get(username) if username else None
        if encoded is None or password is None or not verify_password(password, encoded):
            log.warning("refused client %s (user %r): bad credentials", session.client_id, username)
            return False
        return True

    def _allows(self, session: Session, topic: str, action: Action) -> bool:
        user, client_id = session.username, session.client_id
        match action:
            case Action.PUBLISH:
                allowed = self._acl.allows(user, client_id, topic, Access.WRITE)
            case Action.SUBSCRIBE:
                shared = shared_filter(topic)
                allowed = self._acl.allows_subscribe(user, client_id, topic if shared is None else shared[1])
            case Action.RECEIVE:
                return self._acl.allows(user, client_id, topic, Access.READ)
            case _:
                allowed = False
        if not allowed:
            log.warning("denied %s on %r for user %r", action, topic, user)
        return allowed

    @override
    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        return self._allows(session, topic, action)

    # --- routing ---------------------------------------------------------------------------

    def _targets(self, topic: str, publish_qos: int | None) -> Targets:
        """Who gets a message published now, and at which QoS: one entry per client, at the highest
        QoS of its matching filters, capped by the publisher's."""
        chosen: dict[int, tuple[Session, int]] = {}
        shared: Targets = []
        for topic_filter, subscribers in self._subscriptions.items():
            group = shared_filter(topic_filter)
            if group is not None:
                if self._matches(topic, group[1]) and (target := self._next_in_group(topic_filter, topic, subscribers)):
                    session, sub_qos = target
                    shared.append((session, sub_qos if publish_qos is None else min(publish_qos, sub_qos)))
                continue
            if not self._matches(topic, topic_filter):
                continue
            for session, sub_qos in subscribers:
                qos = sub_qos if publish_qos is None else min(publish_qos, sub_qos)
                known = chosen.get(id(session))
                if known is not None:
                    chosen[id(session)] = (session, max(qos, known[1]))
                elif self._allows(session, topic, Action.RECEIVE):
                    chosen[id(session)] = (session, qos)
        return [*chosen.values(), *shared]

    def _next_in_group(self, topic_filter: str, topic: str, subscribers: Targets) -> tuple[Session, int] | None:
        """A shared subscription's members take its messages in turn, connected ones first."""
        allowed = [s for s in subscribers if self._allows(s[0], topic, Action.RECEIVE)]
        connected = [s for s in allowed if s[0].transitions.is_connected()] or allowed
        if not connected:
            return None
        turn = self._group_turns.get(topic_filter, 0)
        self._group_turns[topic_filter] = turn + 1
        return connected[turn % len(connected)]

    @override
    async def _handle_message_delivery(
        self, client_session: Session, handler: BrokerProtocolHandler, wait_deliver: asyncio.Future[Any]
    ) -> bool:
        message = wait_deliver.result()
        if message is not None:
            self.publishes_received += 1
        token = _publisher_qos.set(None if message is None else message.qos)
        try:
            return bool(await super()._handle_message_delivery(client_session, handler, wait_deliver))
        finally:
            _publisher_qos.reset(token)

    @override
    async def _broadcast_message(
        self, session: Session | None, topic: str | None, data: bytes | bytearray | None, force_qos: int | None = None
    ) -> None:
        # Routed here, in the same step as amqtt then stores a retained copy (no await in between),
        # so that each subscriber gets a message either as retained or as live, never both.
        publish_qos = force_qos if force_qos is not None else _publisher_qos.get()
        targets = self._targets(topic, publish_qos) if topic else []
        broadcast = {"session": session, "topic": topic, "data": data, "targets": targets}
        await self._broadcast_queue.put(broadcast)  # type: ignore[arg-type]

    @override
    async def _run_broadcast(self, running_tasks: deque[asyncio.Task[Any]]) -> None:
        broadcast: dict[str, Any] = await self._broadcast_queue.get()  # type: ignore[assignment]
        topic, data = broadcast["topic"], broadcast["data"]
        for session, qos in broadcast["targets"]:
            if session.transitions.state != "connected":
                # An offline persistent session keeps what it missed at QoS 1 and 2 (MQTT 3.1.2.4).
                if not session.clean_session and qos > 0 and not session.is_anonymous:
                    await self._retain_broadcast_message(broadcast, qos, session)
                continue
            handler = self._get_handler(session)
            if handler is not None:
                self.publishes_sent += 1
                running_tasks.append(asyncio.ensure_future(handler.mqtt_publish(topic, data, qos, retain=False)))

    # --- subscriptions -----------------------------------------------------------------------

    @override
    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        granted = int(await super().add_subscription(subscription, session))
        if granted >= REFUSED:
            return granted
        topic_filter = subscription[0]
        subscribers = self._subscriptions[topic_filter]
        # A repeated SUBSCRIBE replaces the subscription (MQTT-3.8.4-3): amqtt kept the first QoS.
        subscribers[:] = [(s, granted) if s.client_id == session.client_id else (s, q) for s, q in subscribers]
        self._send_retained(topic_filter, granted, session)
        return granted

    def _send_retained(self, topic_filter: str, qos: int, session: Session) -> None:
        """Queue the retained messages for a new subscription now, in the step that made it: they are
        then written before any live message routed to it later (the handler writes in order). A
        shared subscription gets none, as with Mosquitto (MQTT 5 section 4.8.2)."""
        handler = self._get_handler(session)
        if handler is None or shared_filter(topic_filter) is not None:
            return
        for topic, retained in self._retained_messages.items():
            if self._matches(topic, topic_filter) and self._allows(session, topic, Action.RECEIVE):
                send_qos = qos if retained.qos is None else min(qos, retained.qos)
                self.publishes_sent += 1
                self._tasks_queue.append(
                    asyncio.ensure_future(handler.mqtt_publish(topic, retained.data, send_qos, retain=True))
                )

    @override
    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        """Sent by add_subscription already."""

    @override
    def _del_subscription(self, a_filter: str, session: Session) -> int:
        deleted = super()._del_subscription(a_filter, session)
        if not self._subscriptions.get(a_filter, True):
            del self._subscriptions[a_filter]
            self._group_turns.pop(a_filter, None)
        return int(deleted)

    @override
    async def _del_all_subscriptions(self, session: Session) -> None:
        for topic_filter in list(self._subscriptions):
            self._del_subscription(topic_filter, session)

    # --- sessions ----------------------------------------------------------------------------

    @override
    async def _client_message_loop(self, client_session: Session, handler: BrokerProtocolHandler) -> None:
        # amqtt's own, except at the end: what the client published before it went (acknowledged,
        # at QoS 1) is routed first, in order, then the disconnect handled (the will comes last).
        # amqtt handled the disconnect first and dropped whatever was still queued.
        disconnected = asyncio.ensure_future(handler.wait_disconnect())
        subscribed = asyncio.ensure_future(handler.get_next_pending_subscription())
        unsubscribed = asyncio.ensure_future(handler.get_next_pending_unsubscription())
        delivered = asyncio.ensure_future(handler.mqtt_deliver_next_message())
        try:
            while True:
                done, _ = await asyncio.wait(
                    [disconnected, subscribed, unsubscribed, delivered], return_when=asyncio.FIRST_COMPLETED
                )
                if subscribed in done:
                    await self._handle_subscription(client_session, handler, subscribed)
                    subscribed = asyncio.ensure_future(handler.get_next_pending_subscription())
                if unsubscribed in done:
                    await self._handle_unsubscription(client_session, handler, unsubscribed)
                    unsubscribed = asyncio.ensure_future(handler.get_next_pending_unsubscription())
                if delivered in done:
                    if not await self._handle_message_delivery(client_session, handler, delivered):
                        await handler.handle_connection_closed()  # a protocol error ends the connection
                        delivered = asyncio.get_running_loop().create_future()
                    else:
                        delivered = asyncio.ensure_future(handler.mqtt_deliver_next_message())
                if disconnected in done:
                    await self._route_what_is_left(client_session, handler)
                    await self._handle_disconnect(client_session, handler, disconnected)
                    return
        finally:
            waiters = [disconnected, subscribed, unsubscribed, delivered]
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _route_what_is_left(self, session: Session, handler: BrokerProtocolHandler) -> None:
        queue = session.delivered_message_queue
        while not queue.empty():
            message = asyncio.get_running_loop().create_future()
            message.set_result(queue.get_nowait())
            await self._handle_message_delivery(session, handler, message)

    @override
    async def _client_connected(self, listener_name: str, reader: Any, writer: Any) -> None:
        # A peer that resets the connection mid-way is routine, not a traceback in the log.
        try:
            await super()._client_connected(listener_name, reader, writer)
        except OSError as exc:
            log.info("a connection ended early: %s", exc)

    @override
    async def _delete_session(self, client_id: str) -> None:
        # A clean-session CONNECT with a client id in use: amqtt dropped the old session's
        # subscriptions but left its connection open, receiving nothing. Close it (MQTT-3.1.4-2).
        old_session, _ = self._sessions.get(client_id, (None, None))
        if old_session is not None and old_session.transitions.is_connected():
            await self._close_older_connection(client_id)
        await super()._delete_session(client_id)

    async def _close_older_connection(self, client_id: str) -> None:
        log.warning("client %s is already connected: closing the older connection", client_id)
        _, old_handler = self._sessions[client_id]
        await old_handler.handle_connection_closed()
        await old_handler.stop()

    @override
    async def _handle_client_session(
        self,
        reader: Any,
        writer: Any,
        client_session: Session,
        handler: BrokerProtocolHandler,
        server: Any,
        listener_name: str,
    ) -> None:
        # amqtt's own, less the second password check (done before the session was looked up) and
        # less the connect-time replay of retained messages for every filter of every client.
        if client_session.client_id is None:
            raise BrokerError("Client ID was not correctly created/set.")
        while True:
            try:
                client_session.transitions.connect()
                break
            except (MachineError, ValueError):
                if client_session.transitions.is_connected():
                    await self._close_older_connection(client_session.client_id)
                    break
                await asyncio.sleep(1)  # the older connection is still closing
        handler.attach(client_session, reader, writer)
        self._sessions[client_session.client_id] = (client_session, handler)
        await handler.mqtt_connack_authorize(True)
        await handler.start()
        await self._publish_session_retained_messages(client_session)
        await self._client_message_loop(client_session, handler)

    @override
    async def _publish_session_retained_messages(self, session: Session) -> None:
        # What a persistent session missed while offline ("retained" in amqtt's own words) goes
        # out as the live messages it was, RETAIN=0 (MQTT-3.3.1-9); amqtt set RETAIN=1.
        handler = self._get_handler(session)
        if handler is None:
            return
        sends = []
        while not session.retained_messages.empty():
            queued: RetainedApplicationMessage = session.retained_messages.get_nowait()
            self.publishes_sent += 1
            sends.append(handler.mqtt_publish(queued.topic, queued.data, queued.qos, retain=False))
        if sends:
            await asyncio.gather(*sends, return_exceptions=True)

    # --- $SYS ---------------------------------------------------------------------------------

    def connected_clients(self) -> int:
        return sum(1 for session, _ in self._sessions.values() if session.transitions.state == "connected")

    async def publish_sys_topics(self, interval: float) -> None:
        """The `$SYS/broker/...` topics the API's /metrics and scripts/healthcheck read, under
        Mosquitto's names."""
        await self.retain_message(None, "$SYS/broker/version", f"amqtt version {amqtt.__version__}".encode())
        started = time.monotonic()
        while interval > 0:
            values = {
                "uptime": f"{int(time.monotonic() - started)} seconds",
                "clients/connected": self.connected_clients(),
                "publish/messages/received": self.publishes_received,
                "publish/messages/sent": self.publishes_sent,
                "subscriptions/count": sum(len(s) for s in self._subscriptions.values()),
                "retained messages/count": len(self._retained_messages),
            }
            for name, value in values.items():
                await self.internal_message_broadcast(f"$SYS/broker/{name}", str(value).encode())
            await asyncio.sleep(interval)


async def serve(
    config: BrokerConfig, stop: asyncio.Event, *, started: Callable[[HardenedBroker], None] | None = None
) -> None:
    broker = HardenedBroker(config)
    amqtt_protocol.install(
        authenticate=broker.authenticate, max_keepalive=config.max_keepalive, max_packet_size=config.max_packet_size
    )
    await broker.start()
    log.info("amqtt broker listening on %s:%s", config.bind, config.port)
    if started is not None:
        started(broker)
    sys_topics = asyncio.create_task(broker.publish_sys_topics(config.sys_interval))
    await stop.wait()
    log.info("shutting down amqtt broker")
    sys_topics.cancel()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(broker.shutdown(), SHUTDOWN_TIMEOUT)


async def run(config: BrokerConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(config, stop)
