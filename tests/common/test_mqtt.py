from __future__ import annotations

import asyncio
import socket

import pytest

from common.mqtt import RECEIVE_BUFFER, BufferedReads, MqttConnection, MqttOptions, run_until_cancelled
from common.settings import MqttSettings
from tests.helpers import client, wait_until


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


async def test_a_burst_arrives_whole_through_buffered_reads(mqtt_settings: MqttSettings) -> None:
    """QoS 0 messages, small ones and some larger than the receive buffer, published at once: the
    broker sends them without waiting for acknowledgements, so one receive holds many, and each
    reaches the receive hook without waiting for more bytes to make the socket readable again
    (what `pending()` is for: paho reads one packet per call)."""
    received: list[bytes] = []
    connection = MqttConnection(
        mqtt_settings,
        MqttOptions(
            component="ingest",
            client_id="buffered-reads-test",
            subscriptions=[("saic/bufferedreads/vehicles/+/drivetrain/#", 0)],
            on_receive=lambda _topic, payload, _retain: received.append(payload),
        ),
    )
    payloads = [str(n).encode() * (RECEIVE_BUFFER // 3 if n % 100 == 0 else 1) for n in range(1, 501)]
    task = asyncio.create_task(run_until_cancelled(connection))
    try:
        await connection.wait_connected(10)
        async with client(mqtt_settings, "gateway") as gateway:
            for payload in payloads:
                await gateway.publish("saic/bufferedreads/vehicles/V1/drivetrain/soc", payload, qos=0)
            await wait_until(lambda: len(received) >= len(payloads), timeout=10, what="every message of the burst")
    finally:
        await connection.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert received == payloads
