from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho_mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from command_api.mqtt_connect import ACCEPTED, connack
from common.mqtt import (
    MAX_PACKET_SIZE,
    RECEIVE_BUFFER,
    BrokerSocket,
    MessageTooLarge,
    MqttConnection,
    MqttNotConnected,
    MqttOptions,
    _decode_puback,
    _read_whole_packets,
    observe_drop,
    remaining_length,
    run_until_cancelled,
)
from common.settings import MqttSettings
from tests.helpers import client, collect, running, wait_until


def _broker_socket(connection: MqttConnection) -> BrokerSocket:
    """The socket paho uses: the connection's wrapper around the real one."""
    assert connection._client is not None
    wrapped: object = connection._client._client.socket()
    assert isinstance(wrapped, BrokerSocket)
    return wrapped


def _receiving(
    settings: MqttSettings, client_id: str, subscription: str, qos: int
) -> tuple[MqttConnection, list[bytes]]:
    """A connection whose receive hook, as the ingest's, collects every payload it is handed."""
    received: list[bytes] = []
    options = MqttOptions(
        component="ingest",
        client_id=client_id,
        subscriptions=[(subscription, qos)],
        on_receive=lambda _topic, payload, _retain: received.append(payload),
    )
    return MqttConnection(settings, options), received


async def test_client_socket_has_tcp_nodelay(mqtt_settings: MqttSettings) -> None:
    """Nagle's algorithm on the client socket costs each command about 88 ms (two delayed ACKs)."""
    connection = MqttConnection(mqtt_settings, MqttOptions(component="api", client_id="nodelay-test"))
    async with running(connection):
        await connection.wait_connected(10)
        sock = _broker_socket(connection).sock
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def _packet(first_byte: int, body: bytes) -> bytes:
    """An MQTT 3.1.1 packet: its first byte, the body's length (as the API's MQTT edge encodes it), the body."""
    return bytes([first_byte]) + remaining_length(len(body)) + body


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first = (await reader.readexactly(1))[0]
    size, shift = 0, 0
    while True:
        digit = (await reader.readexactly(1))[0]
        size += (digit & 127) << shift
        shift += 7
        if not digit & 128:
            return first, await reader.readexactly(size)


TOPIC = b"saic/x/vehicles/V1/drivetrain/soc"
"""What the fake brokers below publish on."""


async def test_packets_that_arrive_in_one_write_are_all_read() -> None:
    """A broker that writes a window of messages at once and then falls silent: each reaches the
    receive hook although the socket is never readable again (`pending()` keeps aiomqtt reading).

    The broker here is a few lines of wire protocol, not Mosquitto or amqtt: those pace their writes,
    and whether a test sees one write of many messages would be left to timing."""
    payloads = [f"value {n}".encode() for n in range(200)]

    async def send(writer: asyncio.StreamWriter) -> None:  # as one write: the client reads them in one receive
        writer.write(b"".join(_packet(0x30, len(TOPIC).to_bytes(2) + TOPIC + p) for p in payloads))

    assert await _received_from_a_fake_broker(send, "one-write-test", len(payloads)) == payloads


async def test_packets_split_anywhere_across_reads_arrive_whole_and_in_order() -> None:
    """Packets with a remaining length of one, two and three bytes, written in pieces that end
    mid-length and mid-body: a packet the socket's buffer holds whole is taken in one piece, the
    others are read on as the rest arrives (`_read_whole_packets`)."""
    payloads = [bytes([65 + n % 26]) * size for n, size in enumerate([3, 200, 20_000, 90, 3_000, 1] * 10)]
    stream = b"".join(_packet(0x30, len(TOPIC).to_bytes(2) + TOPIC + p) for p in payloads)

    async def send(writer: asyncio.StreamWriter) -> None:
        at = 0
        for size in [1, 2, 37, 1, 4_000, 3, 150, 9_999] * 100:  # then the rest at once
            writer.write(stream[at : at + size])
            await writer.drain()
            await asyncio.sleep(0.001)  # each piece its own read
            at += size
        writer.write(stream[at:])

    assert await _received_from_a_fake_broker(send, "split-reads-test", len(payloads)) == payloads


async def _received_from_a_fake_broker(
    send: Callable[[asyncio.StreamWriter], Awaitable[None]], client_id: str, count: int
) -> list[bytes]:
    """What the receive hook gets from a broker of a few lines of wire protocol that accepts the
    connection and its QoS 0 subscription, has `send` write to it, then answers nothing more."""

    async def fake_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_packet(reader)  # CONNECT
        writer.write(connack(ACCEPTED))
        _, subscribe = await _read_packet(reader)
        writer.write(_packet(0x90, subscribe[:2] + b"\x00"))  # SUBACK for its packet id, QoS 0
        await send(writer)
        await writer.drain()
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await _read_packet(reader)  # PINGREQ, DISCONNECT: unanswered, nothing more is sent

    server = await asyncio.start_server(fake_broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection, received = _receiving(
        MqttSettings.from_env({"MQTT_PORT": str(port), "MQTT_INGEST_PASSWORD": "unused"}),
        client_id,
        "saic/x/vehicles/+/drivetrain/#",
        qos=0,
    )
    task = asyncio.create_task(run_until_cancelled(connection))
    try:
        await wait_until(lambda: len(received) >= count, timeout=10, what="every message")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()
    return received


async def test_each_qos_1_message_is_acknowledged_by_its_id_after_the_hook_even_a_bad_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The receive hook sees each QoS 0 and 1 message with its retain flag, and each QoS 1 message is
    acknowledged with its own id: one whose topic is not UTF-8 too (the hook cannot take it: logged),
    and one with QoS 2 gets paho's PUBREC instead."""
    topic = b"saic/x/vehicles/V1/drivetrain/soc"
    acks: list[tuple[int, bytes]] = []
    seen: list[tuple[str, bytes, bool]] = []

    async def fake_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_packet(reader)  # CONNECT
        writer.write(connack(ACCEPTED))
        _, subscribe = await _read_packet(reader)
        writer.write(_packet(0x90, subscribe[:2] + b"\x01"))
        writer.write(_packet(0x33, len(topic).to_bytes(2) + topic + (300).to_bytes(2) + b"retained"))
        writer.write(_packet(0x32, (4).to_bytes(2) + b"s\xffx/" + (301).to_bytes(2) + b"bad topic"))
        writer.write(_packet(0x30, len(topic).to_bytes(2) + topic + b"qos 0"))
        writer.write(_packet(0x34, len(topic).to_bytes(2) + topic + (302).to_bytes(2) + b"qos 2"))
        writer.write(_packet(0x32, len(topic).to_bytes(2) + topic + (65_535).to_bytes(2) + b"last"))
        await writer.drain()
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                kind, body = await _read_packet(reader)
                if kind & 0xF0 in (0x40, 0x50):  # PUBACK, PUBREC
                    acks.append((kind, body))

    server = await asyncio.start_server(fake_broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    options = MqttOptions(
        component="ingest",
        client_id="acks-test",
        subscriptions=[("saic/x/vehicles/+/drivetrain/#", 1)],
        on_receive=lambda topic, payload, retain: seen.append((topic, payload, retain)),
    )
    connection = MqttConnection(
        MqttSettings.from_env({"MQTT_PORT": str(port), "MQTT_INGEST_PASSWORD": "unused"}), options
    )
    task = asyncio.create_task(run_until_cancelled(connection))
    try:
        await wait_until(lambda: len(acks) >= 4, timeout=5, what="every acknowledgement")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()
    text = topic.decode()
    assert seen == [(text, b"retained", True), (text, b"qos 0", False), (text, b"last", False)]
    assert acks == [
        (0x40, (300).to_bytes(2)),
        (0x40, (301).to_bytes(2)),
        (0x50, (302).to_bytes(2)),
        (0x40, b"\xff\xff"),
    ]
    assert "receive hook failed" in caplog.text


def test_a_packet_the_buffer_holds_whole_is_taken_in_one_piece_whatever_its_length() -> None:
    """Remaining lengths of one, two and three bytes, parsed where they lie: paho's own reading,
    a call per byte, is never asked for."""
    paho = paho_mqtt.Client(CallbackAPIVersion.VERSION2)
    handled: list[tuple[int, bytes, int]] = []

    def record() -> MQTTErrorCode:
        packet = paho._in_packet
        handled.append((packet["command"], bytes(packet["packet"]), packet["remaining_length"]))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    paho._packet_handle = record  # type: ignore[method-assign]
    paho._packet_read = lambda: pytest.fail("read piecewise")  # type: ignore[method-assign]
    _read_whole_packets(paho)
    near, far = socket.socketpair()
    near.setblocking(False)
    paho._sock = buffered = BrokerSocket(near)  # type: ignore[assignment]
    bodies = [b"a" * 3, b"b" * 200, b"c" * 20_000, b""]
    try:
        far.sendall(b"".join(_packet(0x30, body) for body in bodies))
        assert buffered.recv(0) == b""  # the buffer filled, nothing taken
        for _ in bodies:
            assert paho._packet_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
        assert handled == [(0x30, body, len(body)) for body in bodies]
        assert (buffered.pending(), paho._in_packet["command"]) == (0, 0)
    finally:
        near.close()
        far.close()


def test_buffered_reads_serve_small_reads_from_one_receive() -> None:
    near, far = socket.socketpair()
    near.setblocking(False)
    buffered = BrokerSocket(near)
    try:
        far.sendall(b"\x30\x05hello")
        assert buffered.recv(1) == b"\x30"
        assert buffered.pending() == 6  # in the buffer, none left in the kernel
        assert buffered.recv(1) == b"\x05"
        assert buffered.recv(100) == b"hello"  # never more than what the first receive got
        assert buffered.pending() == 0
        with pytest.raises(BlockingIOError):  # paho's signal that nothing is there yet
            buffered.recv(1)
        assert buffered.fileno() == near.fileno()  # the rest is the socket's
        far.close()
        assert buffered.recv(1) == b""  # end of stream, as from the socket
    finally:
        near.close()
        far.close()


async def test_messages_larger_than_the_receive_buffer_arrive_whole(mqtt_settings: MqttSettings) -> None:
    """Small messages and some larger than one receive (`RECEIVE_BUFFER`), through a real broker:
    each reaches the receive hook whole, once and in order."""
    connection, received = _receiving(
        mqtt_settings, "buffered-reads-test", "saic/bufferedreads/vehicles/+/drivetrain/#", qos=1
    )
    payloads = [str(n).encode() * (RECEIVE_BUFFER // 2 if n % 50 == 0 else 1) for n in range(1, 301)]
    async with running(connection):
        await connection.wait_connected(10)
        async with client(mqtt_settings, "gateway") as gateway:
            for payload in payloads:
                await gateway.publish("saic/bufferedreads/vehicles/V1/drivetrain/soc", payload, qos=1)
            await wait_until(lambda: len(received) >= len(payloads), timeout=10, what="every message")
    assert received == payloads


async def test_publishes_past_the_in_flight_bound_all_arrive_once(mqtt_settings: MqttSettings) -> None:
    """paho's own in-flight limit is off (its scan of in-flight messages on every PUBACK took 6 % of
    the gateway's 1,000-car start-up); `max_inflight` bounds what awaits a PUBACK instead (single
    publishes are packed as batches are: their PUBACKs are the connection's, not paho's)."""
    bound, count = 8, 400
    topic = "saic/inflight/vehicles/V1/drivetrain/soc"
    connection = MqttConnection(
        mqtt_settings, MqttOptions(component="gateway", client_id="inflight-test", max_inflight=bound)
    )
    task = asyncio.create_task(run_until_cancelled(connection))
    most_in_flight = 0
    try:
        await connection.wait_connected(10)
        assert connection._client is not None
        paho = connection._client._client
        assert paho.max_inflight_messages == 0

        async def watch() -> None:
            nonlocal most_in_flight
            while True:
                most_in_flight = max(most_in_flight, len(connection._acks) + paho._inflight_messages)
                await asyncio.sleep(0)

        async with client(mqtt_settings, "api") as reader:
            await reader.subscribe(topic, qos=1)
            watcher = asyncio.create_task(watch())
            await asyncio.gather(*(connection.publish(topic, str(n).encode()) for n in range(count)))
            watcher.cancel()
            received = [int(m.payload) for m in await collect(reader, count, timeout=10)]
    finally:
        await connection.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sorted(received) == list(range(count))
    assert 1 < most_in_flight <= bound


async def test_publish_many_delivers_each_message_once_and_leaves_out_the_too_large(
    mqtt_settings: MqttSettings,
) -> None:
    topic = "saic/publishmany/vehicles/V1/drivetrain/soc"
    messages = [(topic, str(n).encode()) for n in range(1_200)]
    too_large = (topic, b"x" * MAX_PACKET_SIZE)
    connection = MqttConnection(mqtt_settings, MqttOptions(component="gateway", client_id="publish-many-test"))
    async with running(connection):
        await connection.wait_connected(10)
        async with client(mqtt_settings, "api") as reader:
            await reader.subscribe(topic, qos=1)
            left_out = await connection.publish_many([*messages[:600], too_large, *messages[600:]])
            received = [int(m.payload) for m in await collect(reader, len(messages), timeout=10)]
            assert not connection._acks  # every PUBACK came in
    assert sorted(received) == list(range(len(messages)))
    assert len(left_out) == 1
    assert isinstance(left_out[0], MessageTooLarge)
    with pytest.raises(MqttNotConnected):
        await connection.publish_many(messages[:1])


async def test_batches_and_single_publishes_at_once_each_get_their_puback_across_the_id_wrap(
    mqtt_settings: MqttSettings,
) -> None:
    """A batch's PUBACKs are taken before paho sees them, aiomqtt's go on to paho; message ids come
    from one counter, which wraps at 65,535 in the middle of this batch."""
    topic = "saic/idwrap/vehicles/V1/drivetrain/soc"
    # Lengths on both sides of 127 and 16,383, where the remaining length takes another byte.
    batch = [(topic, b"batch %d " % n + b"x" * (n % 300 + (16_300 if n % 100 == 0 else 0))) for n in range(2_000)]
    connection = MqttConnection(mqtt_settings, MqttOptions(component="gateway", client_id="id-wrap-test"))
    async with running(connection):
        await connection.wait_connected(10)
        assert connection._client is not None
        paho = connection._client._client
        paho._last_mid = 100  # an id a batch waits on, then one paho waits on, are skipped
        connection._acks[101] = asyncio.get_running_loop().create_future()
        paho._out_messages[102] = paho_mqtt.MQTTMessage(102)
        assert connection._free_mid(paho) == 103
        del connection._acks[101], paho._out_messages[102]
        paho._last_mid = 65_535 - 1_000
        async with client(mqtt_settings, "api") as reader:
            await reader.subscribe(topic, qos=1)
            singles = [connection.publish(topic, b"single %d" % n) for n in range(50)]
            await asyncio.gather(
                connection.publish_many(batch[:1_000]), *singles, connection.publish_many(batch[1_000:])
            )
            received = [m.payload for m in await collect(reader, len(batch) + len(singles), timeout=10)]
        assert not connection._acks
        assert not paho._out_messages
        assert paho._last_mid < 2_000
    assert sorted(received) == sorted([payload for _, payload in batch] + [b"single %d" % n for n in range(50)])
    # One batch's messages arrive in their order.
    assert [p for p in received if isinstance(p, bytes) and p.startswith(b"batch")][:1_000] == [
        payload for _, payload in batch[:1_000]
    ]


async def test_a_batch_with_a_wildcard_topic_is_refused_whole(mqtt_settings: MqttSettings) -> None:
    topic = "saic/wildcard/vehicles/V1/drivetrain/soc"
    connection = MqttConnection(mqtt_settings, MqttOptions(component="gateway", client_id="wildcard-test"))
    async with running(connection), client(mqtt_settings, "api") as reader:
        await connection.wait_connected(10)
        await reader.subscribe(topic, qos=1)
        with pytest.raises(ValueError, match="wildcards"):
            await connection.publish_many([(topic, b"before"), ("saic/+/vehicles", b"x"), (topic, b"after")])
        await connection.publish_many([(topic, b"next")], qos=0)
        received = [m.payload for m in await collect(reader, 1, timeout=10)]
        assert not connection._acks
    assert received == [b"next"]


async def test_a_batch_published_retained_is_kept_by_the_broker(mqtt_settings: MqttSettings) -> None:
    topics = [f"saic/retainedbatch/vehicles/V{n}/drivetrain/soc" for n in range(3)]
    connection = MqttConnection(mqtt_settings, MqttOptions(component="gateway", client_id="retained-batch-test"))
    async with running(connection):
        await connection.wait_connected(10)
        await connection.publish_many([(topic, b"kept " + topic.encode()) for topic in topics], retain=True)
        try:
            async with client(mqtt_settings, "ingest") as reader:  # a filter amqtt's ACL grants
                await reader.subscribe("saic/retainedbatch/vehicles/+/drivetrain/#", qos=1)
                received = await collect(reader, len(topics), timeout=10)
        finally:
            await connection.publish_many([(topic, b"") for topic in topics], retain=True)  # left as found
    assert sorted((m.topic.value, m.payload, m.retain) for m in received) == [
        (topic, b"kept " + topic.encode(), True) for topic in topics
    ]


async def test_publishes_are_written_in_the_loop_pass_that_queued_them_and_a_full_socket_drains(
    mqtt_settings: MqttSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiomqtt registered a writer for every publish on an idle socket (a self-pipe wake, two epoll
    changes, a loop pass); common.mqtt writes in the pass that queued it, and registers a writer
    only when the kernel takes part of a write."""
    topic = "saic/writepass/vehicles/V1/drivetrain/soc"
    connection = MqttConnection(mqtt_settings, MqttOptions(component="gateway", client_id="write-pass-test"))
    task = asyncio.create_task(run_until_cancelled(connection))
    loop = asyncio.get_running_loop()
    writers: list[int] = []
    add_writer = loop.add_writer

    def counted_add_writer(fd: Any, callback: Callable[..., object], *args: Any) -> None:
        writers.append(fd)
        add_writer(fd, callback, *args)

    try:
        await connection.wait_connected(10)
        monkeypatch.setattr(loop, "add_writer", counted_add_writer)
        sock = _broker_socket(connection)
        async with client(mqtt_settings, "api") as reader:
            await reader.subscribe(topic, qos=1)
            for n in range(20):
                await connection.publish(topic, b"small %d" % n)
            assert sock.fileno() not in writers
            sock.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
            await connection.publish_many([(topic, b"%02d" % n + b"x" * 100_000) for n in range(40)])
            assert sock.fileno() in writers  # 4 MB through a 32 KiB send buffer (the kernel doubles it)
            received = [m.payload for m in await collect(reader, 60, timeout=30)]
    finally:
        await connection.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert isinstance(received[0], bytes)
    assert sorted(p for p in received if isinstance(p, bytes) and p.startswith(b"small")) == sorted(
        b"small %d" % n for n in range(20)
    )
    assert sorted(p[:2] for p in received if isinstance(p, bytes) and not p.startswith(b"small")) == [
        b"%02d" % n for n in range(40)
    ]


async def test_publish_many_fails_when_the_connection_drops_before_the_pubacks() -> None:
    """No waiting out the timeout (10 s) for PUBACKs that cannot come any more."""
    published = asyncio.Event()

    async def fake_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_packet(reader)  # CONNECT
        writer.write(connack(ACCEPTED))
        while (await _read_packet(reader))[0] & 0xF0 != 0x30:  # until a PUBLISH
            pass
        published.set()
        writer.close()  # no PUBACK

    server = await asyncio.start_server(fake_broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = MqttConnection(
        MqttSettings.from_env({"MQTT_PORT": str(port), "MQTT_GATEWAY_PASSWORD": "unused"}),
        MqttOptions(component="gateway", client_id="dropped-pubacks-test"),
    )
    task = asyncio.create_task(run_until_cancelled(connection))
    try:
        await connection.wait_connected(10)
        started = asyncio.get_running_loop().time()
        with pytest.raises(MqttNotConnected):
            await connection.publish_many([("saic/x/vehicles/V1/drivetrain/soc", b"1")] * 10)
        assert published.is_set()
        assert asyncio.get_running_loop().time() - started < 5
        assert not connection._acks
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()


async def test_no_byte_leaves_before_the_receive_side_has_written_what_it_holds(mqtt_settings: MqttSettings) -> None:
    """The ingest keeps each socket read's messages in memory and writes them to its write-ahead
    log in `before_send`: every PUBACK for a message must leave after that write."""
    topic = "saic/beforesend/vehicles/V1/drivetrain/soc"
    held: list[bytes] = []
    written: list[bytes] = []
    sends_with_held_messages = 0
    sends = 0

    def write_held() -> None:
        written.extend(held)
        held.clear()

    class RecordingSocket:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def send(self, data: bytes, *flags: int) -> int:
            nonlocal sends, sends_with_held_messages
            sends += 1
            sends_with_held_messages += bool(held)
            return self.sock.send(data, *flags)

        def __getattr__(self, name: str) -> object:
            return getattr(self.sock, name)

    connection = MqttConnection(
        mqtt_settings,
        MqttOptions(
            component="ingest",
            client_id="before-send-test",
            subscriptions=[(topic, 1)],
            on_receive=lambda _topic, payload, _retain: held.append(payload),
            before_send=write_held,
        ),
    )
    async with running(connection):
        await connection.wait_connected(10)
        wrapped = _broker_socket(connection)
        wrapped.sock = RecordingSocket(wrapped.sock)
        async with client(mqtt_settings, "gateway") as gateway:
            await asyncio.gather(*(gateway.publish(topic, str(n).encode(), qos=1) for n in range(500)))
            await wait_until(lambda: len(written) + len(held) >= 500, timeout=10, what="every message")
    assert sends > 0
    assert sends_with_held_messages == 0
    assert sorted(int(p) for p in written + held) == list(range(500))


def test_packets_queued_together_leave_in_one_send() -> None:
    """While paho has more queued, a packet is held; the last one's send writes them all."""
    server = socket.create_server(("127.0.0.1", 0))
    near = socket.create_connection(server.getsockname())
    far, _ = server.accept()
    try:
        queued = [b"second ", b"third"]
        wrapped = BrokerSocket(near, more_queued=lambda: bool(queued))
        assert wrapped.send(b"first ") == len(b"first ")
        assert wrapped.send(queued.pop(0)) == len(b"second ")
        far.settimeout(0.05)
        with pytest.raises(TimeoutError):  # held here, not in the kernel
            far.recv(100)
        assert wrapped.send(queued.pop()) == len(b"third")
        far.settimeout(1)
        assert far.recv(100) == b"first second third"
    finally:
        for sock in (near, far, server):
            sock.close()


def _write_as_paho(wrapped: BrokerSocket, packets: list[bytearray]) -> bool:
    """paho's `_packet_write`: each packet from the front, partly sent ones kept at the front,
    stopping at BlockingIOError with the packet kept. False when the socket is full."""
    while packets:
        packet = packets.pop(0)
        try:
            sent = wrapped.send(bytes(packet))
        except BlockingIOError:
            packets.insert(0, packet)
            return False
        assert sent > 0  # paho drops a packet whose send returns 0
        if sent < len(packet):
            packets.insert(0, packet[sent:])
    return True


def test_held_packets_the_kernel_cannot_take_wait_in_order_for_the_socket() -> None:
    """A full socket: the held bytes the kernel did not take stay held and go first once it drains,
    and the packet whose send found it full is left to paho; every byte arrives once, in order."""
    server = socket.create_server(("127.0.0.1", 0))
    near = socket.create_connection(server.getsockname())
    far, _ = server.accept()
    try:
        near.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        near.setblocking(False)
        packets = [bytearray(b"%04d" % n + bytes([n % 251]) * 3_000) for n in range(2_000)]
        expected = b"".join(packets)  # 6 MB: more than the kernel's buffers on both sides hold
        wrapped = BrokerSocket(near, more_queued=lambda: bool(packets))
        received = bytearray()
        far.settimeout(0.01)
        full = 0
        deadline = time.monotonic() + 30
        while (not _write_as_paho(wrapped, packets) or len(received) < len(expected)) and time.monotonic() < deadline:
            full += 1
            with contextlib.suppress(TimeoutError):
                received += far.recv(1 << 20)
        assert full > 1  # the socket did fill
        assert received == expected
    finally:
        for sock in (near, far, server):
            sock.close()


def test_a_v311_puback_decodes_as_paho_decodes_it() -> None:
    """common.mqtt shares one reason code and one properties object between 3.1.1 PUBACKs."""
    from paho.mqtt import _packet
    from paho.mqtt.enums import MQTTProtocolVersion

    for protocol in (MQTTProtocolVersion.MQTTv311, MQTTProtocolVersion.MQTTv31, MQTTProtocolVersion.MQTTv5):
        for body in (b"\x12\x34", b"\x00\x01") + ((b"\x00\x07\x10",) if protocol == MQTTProtocolVersion.MQTTv5 else ()):
            ours, paho = _packet.decode_puback(0x40, body, protocol), _decode_puback(0x40, body, protocol)
            assert ours.mid == paho.mid
            assert ours.reason == paho.reason
            assert ours.properties.json() == paho.properties.json()  # type: ignore[no-untyped-call]


def test_messages_share_one_condition_and_a_thread_waiting_on_one_wakes_for_its_own() -> None:
    """common.mqtt gives paho's messages one shared `threading.Condition`: a thread blocked in
    `wait_for_publish()` must still return once its message, and not only another, is published."""
    import threading

    from paho.mqtt.client import MQTTMessage, MQTTMessageInfo

    first, second = MQTTMessage(1).info, MQTTMessage(2).info
    assert first._condition is second._condition
    returned: list[int] = []

    def wait(info: MQTTMessageInfo) -> None:
        info.wait_for_publish()
        returned.append(info.mid)

    waiters = [threading.Thread(target=wait, args=(info,), daemon=True) for info in (first, second)]
    for waiter in waiters:
        waiter.start()
    second._set_as_published()
    waiters[1].join(5)
    assert returned == [2]
    assert not first.is_published()
    first._set_as_published()
    waiters[0].join(5)
    assert returned == [2, 1]


async def test_received_messages_leave_no_reference_cycles(mqtt_settings: MqttSettings) -> None:
    """paho looks up per-topic callbacks for every message it receives, and its matcher built a
    closure that refers to itself: a cycle per message for the cyclic collector, whose collections
    grew with the ingest's cache (docs/benchmarks.md). What is received must be freed by reference
    counting alone."""
    count = 500
    connection, received = _receiving(mqtt_settings, "no-cycles-test", "saic/nocycles/vehicles/+/drivetrain/#", qos=1)
    async with running(connection):
        await connection.wait_connected(10)
        async with client(mqtt_settings, "gateway") as gateway:
            gc.collect()
            gc.disable()
            try:
                for n in range(count):
                    await gateway.publish("saic/nocycles/vehicles/V1/drivetrain/soc", str(n), qos=0)
                await wait_until(lambda: len(received) >= count, timeout=10, what="every message")
                garbage = gc.collect()
            finally:
                gc.enable()
    assert len(received) == count
    assert garbage < count / 10, f"{garbage} objects in cycles after {count} messages"


async def test_a_drop_the_stopped_connection_never_saw_is_not_left_unretrieved(mqtt_settings: MqttSettings) -> None:
    """The connection drops while a handler runs, and the connection is stopped before its loop
    reads the drop: aiomqtt's record of it must not end in asyncio's "Future exception was never
    retrieved" when the client is collected (it did, in test runs and at shutdowns)."""
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    topic = "saic/drop/vehicles/V1/drivetrain/soc"
    handling = asyncio.Event()

    async def hold(_message: Any) -> None:
        handling.set()
        await asyncio.Event().wait()  # until the connection's task is cancelled

    options = MqttOptions(component="api", client_id="drop-test", subscriptions=[(topic, 0)])
    connection = MqttConnection(mqtt_settings, options, on_message=hold)
    task = asyncio.create_task(connection.run())
    try:
        await connection.wait_connected(10)
        assert connection._client is not None
        aiomqtt_client = connection._client
        async with client(mqtt_settings, "gateway") as publisher:
            await publisher.publish(topic, b"1")
            await asyncio.wait_for(handling.wait(), 10)
        sock: Any = aiomqtt_client._client.socket()
        sock.shutdown(socket.SHUT_RDWR)  # the connection drops
        await wait_until(aiomqtt_client._disconnected.done, what="aiomqtt to see the drop")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        del aiomqtt_client
        gc.collect()
        await asyncio.sleep(0)
    finally:
        task.cancel()
        loop.set_exception_handler(previous)
    assert [c["message"] for c in unretrieved] == []


@pytest.mark.parametrize("observed", [None, "after", "before"], ids=["left-to-aiomqtt", "after", "before"])
async def test_a_dropped_connection_leaves_no_unread_error_once_observed(observed: str | None) -> None:
    """aiomqtt keeps a dropped connection's error on a future that only its message iterator reads,
    and its `__aexit__` leaves it unread: asyncio then reports "Future exception was never retrieved"
    when the client is collected (seen at the end of test runs). `observe_drop` reads it, whether
    the drop came before it was called or after. The drop here is paho's keepalive timeout, against
    a broker that never answers a PINGREQ."""

    async def silent_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_packet(reader)  # CONNECT
        writer.write(connack(ACCEPTED))
        await writer.drain()
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await _read_packet(reader)  # PINGREQ, unanswered

    server = await asyncio.start_server(silent_broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    handler = loop.get_exception_handler()
    try:
        mqtt = aiomqtt.Client("127.0.0.1", port, identifier=f"silent-{observed}", keepalive=1)
        async with mqtt:
            if observed == "before":
                observe_drop(mqtt)
            await wait_until(mqtt._disconnected.done, timeout=10, what="paho's keepalive timeout")
        if observed == "after":
            observe_drop(mqtt)
        await asyncio.sleep(0)  # a done callback runs
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        del mqtt
        gc.collect()
    finally:
        loop.set_exception_handler(handler)
        server.close()
    unread = [str(c["exception"]) for c in reported if "never retrieved" in c.get("message", "")]
    assert unread == ([] if observed else ["[code:141] Keep alive timeout"])
