from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from command_api.mqtt_connect import ACCEPTED, connack, remaining_length
from common.mqtt import RECEIVE_BUFFER, BufferedReads, MqttConnection, MqttOptions, run_until_cancelled
from common.settings import MqttSettings
from tests.helpers import client, collect, wait_until


async def test_client_socket_has_tcp_nodelay(mqtt_settings: MqttSettings) -> None:
    """Nagle's algorithm on the client socket costs each command about 88 ms (two delayed ACKs)."""
    connection = MqttConnection(mqtt_settings, MqttOptions(component="api", client_id="nodelay-test"))
    task = asyncio.create_task(run_until_cancelled(connection))
    try:
        await connection.wait_connected(10)
        assert connection._client is not None
        buffered = connection._client._client.socket()
        assert isinstance(buffered, BufferedReads)
        sock = buffered.sock
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        await connection.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _packet(first_byte: int, body: bytes) -> bytes:
    """An MQTT 3.1.1 packet: its first byte, the body's length (as the API's MQTT edge encodes it), the body."""
    return bytes([first_byte]) + remaining_length(len(body)) + body


async def test_packets_that_arrive_in_one_write_are_all_read() -> None:
    """A broker that writes a window of messages at once and then falls silent: each reaches the
    receive hook although the socket is never readable again (`pending()` keeps aiomqtt reading).

    The broker here is a few lines of wire protocol, not Mosquitto or amqtt: those pace their writes,
    and whether a test sees one write of many messages would be left to timing."""
    payloads = [f"value {n}".encode() for n in range(200)]
    topic = b"saic/x/vehicles/V1/drivetrain/soc"

    async def fake_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def read_packet() -> tuple[int, bytes]:
            first = (await reader.readexactly(1))[0]
            size, shift = 0, 0
            while True:
                digit = (await reader.readexactly(1))[0]
                size += (digit & 127) << shift
                shift += 7
                if not digit & 128:
                    return first, await reader.readexactly(size)

        await read_packet()  # CONNECT
        writer.write(connack(ACCEPTED))
        _, subscribe = await read_packet()
        writer.write(_packet(0x90, subscribe[:2] + b"\x00"))  # SUBACK for its packet id, QoS 0
        # Sent after the SUBACK, as one write: the client reads them all with one receive.
        writer.write(b"".join(_packet(0x30, len(topic).to_bytes(2) + topic + p) for p in payloads))
        await writer.drain()
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await read_packet()  # PINGREQ, DISCONNECT: unanswered, nothing more is sent

    server = await asyncio.start_server(fake_broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    received: list[bytes] = []
    connection = MqttConnection(
        MqttSettings.from_env({"MQTT_PORT": str(port), "MQTT_INGEST_PASSWORD": "unused"}),
        MqttOptions(
            component="ingest",
            client_id="one-write-test",
            subscriptions=[("saic/x/vehicles/+/drivetrain/#", 0)],
            on_receive=lambda _topic, payload, _retain: received.append(payload),
        ),
    )
    task = asyncio.create_task(run_until_cancelled(connection))
    try:
        await wait_until(lambda: len(received) >= len(payloads), timeout=5, what="every message of the write")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()
    assert received == payloads


def test_buffered_reads_serve_small_reads_from_one_receive() -> None:
    near, far = socket.socketpair()
    near.setblocking(False)
    buffered = BufferedReads(near)
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
    received: list[bytes] = []
    connection = MqttConnection(
        mqtt_settings,
        MqttOptions(
            component="ingest",
            client_id="buffered-reads-test",
            subscriptions=[("saic/bufferedreads/vehicles/+/drivetrain/#", 1)],
            on_receive=lambda _topic, payload, _retain: received.append(payload),
        ),
    )
    payloads = [str(n).encode() * (RECEIVE_BUFFER // 2 if n % 50 == 0 else 1) for n in range(1, 301)]
    task = asyncio.create_task(run_until_cancelled(connection))
    try:
        await connection.wait_connected(10)
        async with client(mqtt_settings, "gateway") as gateway:
            for payload in payloads:
                await gateway.publish("saic/bufferedreads/vehicles/V1/drivetrain/soc", payload, qos=1)
            await wait_until(lambda: len(received) >= len(payloads), timeout=10, what="every message")
    finally:
        await connection.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert received == payloads


async def test_publishes_past_the_in_flight_bound_all_arrive_once(mqtt_settings: MqttSettings) -> None:
    """paho's own in-flight limit is off (its scan of in-flight messages on every PUBACK took 6 % of
    the gateway's 1,000-car start-up); `max_inflight` bounds what awaits a PUBACK instead."""
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
                most_in_flight = max(most_in_flight, paho._inflight_messages)
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
