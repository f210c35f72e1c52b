from __future__ import annotations

import asyncio
import socket

from common.mqtt import MqttConnection, MqttOptions, run_until_cancelled
from common.settings import MqttSettings


async def test_client_socket_has_tcp_nodelay(mqtt_settings: MqttSettings) -> None:
    """Nagle's algorithm on the client socket costs each command about 88 ms (two delayed ACKs)."""
    connection = MqttConnection(mqtt_settings, MqttOptions(component="api", client_id="nodelay-test"))
    task = asyncio.create_task(run_until_cancelled(connection))
    try:
        await connection.wait_connected(10)
        assert connection._client is not None
        sock = connection._client._client.socket()
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        await connection.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
