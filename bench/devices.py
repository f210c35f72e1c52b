"""Directly connected devices at scale: N devices connected at once through the API's MQTT edge to
the embedded broker, each sending one telemetry message a minute, into PostgreSQL by the ingest.

Every program runs in a process of its own, as under supervisord: the broker (`python -m broker`),
`python -m ingest` and `--edges` API replicas (`python -m command_api`), each replica's edge taking
an equal share of the devices (a process holds two descriptors per device, and this machine allows
20,000). The devices are light MQTT-over-WebSocket clients in this process: a real CONNECT with
a fresh HMAC password, then QoS 1 PUBLISHes. Devices are enrolled straight into the database.

For each count, cumulatively (1,000, then 5,000 more, ...):
- connect time for the new devices (500 at a time) and how many were refused or failed;
- broker and edge RSS, and their cost per 1,000 connections;
- one telemetry message from every device, spread over `--window` s (60 s: one a minute each), and
  the ingest lag: from the last message sent to every row committed.

    .venv/bin/python -m bench.devices [--counts 1000,5000,10000] [--broker mosquitto|amqtt|both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import asyncpg
from cryptography.fernet import Fernet

from bench import run
from bench.api import _api_env, _migrate, _process, _program_env
from bench.broker_throughput import rss_mib
from bench.servers import broker_process, postgres
from command_api import mqtt_connect
from common import device_credentials, topics
from common.account_secrets import AccountCipher, DeviceCipherSettings
from common.mqtt import remaining_length
from common.settings import MqttSettings
from local_stack.ports import free_port

CONNECT_AT_ONCE = 500


@dataclass
class Device:
    device_id: str
    secret: str
    ws: aiohttp.ClientWebSocketResponse | None = None


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    body = struct.pack("!H", len(topic)) + topic.encode() + struct.pack("!H", packet_id) + payload
    return bytes((0x32,)) + remaining_length(len(body)) + body  # PUBLISH, QoS 1


async def enrol(database_url: str, organization_key: str, count: int) -> list[Device]:
    cipher = AccountCipher(DeviceCipherSettings.from_env({"DEVICES_ENCRYPTION_KEY": organization_key}))
    devices = []
    rows = []
    for n in range(count):
        mac = f"02:42:{n >> 24 & 255:02x}:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"
        device = Device(device_credentials.device_id_for(mac), device_credentials.new_secret())
        devices.append(device)
        rows.append((device.device_id, mac, cipher.encrypt(device.secret)))
    conn = await asyncpg.connect(database_url)
    try:
        org = await conn.fetchval("INSERT INTO organizations (name) VALUES ('bench') RETURNING id")
        await conn.copy_records_to_table(
            "devices",
            records=[(*row, org) for row in rows],
            columns=("device_id", "mac", "secret_encrypted", "organization_id"),
        )
    finally:
        await conn.close()
    return devices


async def connect(http: aiohttp.ClientSession, edge: str, device: Device) -> bool:
    signed = int(time.time())
    hello = mqtt_connect.Connect(
        client_id=device.device_id,
        keepalive=0,  # no keep-alive: the bench holds the connections idle between its messages
        clean_session=True,
        username=device.device_id,
        password=device_credentials.password(device.secret, device.device_id, signed).encode(),
    )
    try:
        ws = await http.ws_connect(edge, protocols=("mqtt",), autoping=True)
        await ws.send_bytes(mqtt_connect.encode(hello))
        answer = await ws.receive(timeout=30)
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False
    if answer.type != aiohttp.WSMsgType.BINARY or answer.data != mqtt_connect.connack(mqtt_connect.ACCEPTED):
        await ws.close()
        return False
    device.ws = ws
    return True


async def connect_all(http: aiohttp.ClientSession, edges: list[str], devices: list[Device]) -> tuple[float, int]:
    started, failed = time.perf_counter(), 0
    for first in range(0, len(devices), CONNECT_AT_ONCE):
        batch = devices[first : first + CONNECT_AT_ONCE]
        results = await asyncio.gather(
            *(connect(http, edges[(first + i) % len(edges)], d) for i, d in enumerate(batch))
        )
        failed += results.count(False)
    return time.perf_counter() - started, failed


async def one_message_each(devices: list[Device], window: float) -> float:
    """Every connected device sends one reading, spread evenly over `window`; returns when the last was sent."""
    connected = [d for d in devices if d.ws is not None]
    gap = window / max(1, len(connected))
    started = time.perf_counter()
    for n, device in enumerate(connected):
        delay = started + n * gap - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        reading = json.dumps({"ts": time.time(), "targets": [{"x": 1.5, "y": 3.0}]}).encode()
        assert device.ws is not None
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await device.ws.send_bytes(
                publish_packet(topics.device_topic(device.device_id, topics.DEVICE_TELEMETRY), reading, 1)
            )
    return time.perf_counter()


async def rows_committed(database_url: str, expected: int, timeout: float = 120) -> float | None:
    """When the telemetry table holds `expected` rows (None: not within `timeout`)."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if await conn.fetchval("SELECT count(*) FROM device_telemetry") >= expected:
                return time.perf_counter()
            await asyncio.sleep(0.2)
        return None
    finally:
        await conn.close()


@contextlib.contextmanager
def programs(mqtt: MqttSettings, database_url: str, edges: int, key: str) -> Iterator[tuple[list[str], list[int]]]:
    """The ingest and `edges` API replicas; their edges' URLs and the replicas' process ids."""
    env = _program_env(mqtt, database_url) | {"MQTT_DEVICES_PASSWORD": mqtt.password_for("devices")}
    ports = [free_port() for _ in range(edges)]
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            _process([sys.executable, "-m", "ingest"], env | {"INGEST_SPOOL_DIR": tempfile.mkdtemp(prefix="bench-")})
        )
        pids = []
        for port in ports:
            api_env = _api_env(mqtt, database_url, port) | {
                "DEVICES_ENCRYPTION_KEY": key,
                "MQTT_DEVICES_PASSWORD": mqtt.password_for("devices"),
            }
            pids.append(stack.enter_context(_process([sys.executable, "-m", "command_api"], api_env, port)))
        yield [f"http://127.0.0.1:{port}/mqtt" for port in ports], pids


async def measure(implementation: str, counts: list[int], edges: int, window: float) -> None:
    key = Fernet.generate_key().decode()
    with broker_process(implementation) as (mqtt, broker_pid), postgres() as database_url:
        await _migrate(database_url)
        devices = await enrol(database_url, key, counts[-1])
        with programs(mqtt, database_url, edges, key) as (urls, edge_pids):
            await asyncio.sleep(2)  # the programs connect to the broker
            base_broker = rss_mib(broker_pid)
            base_edges = sum(rss_mib(pid) for pid in edge_pids)
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                done, sent_rows = 0, 0
                for count in counts:
                    seconds, failed = await connect_all(http, urls, devices[done:count])
                    done = count
                    await asyncio.sleep(3)
                    broker_mib = rss_mib(broker_pid) - base_broker
                    edges_mib = sum(rss_mib(pid) for pid in edge_pids) - base_edges
                    connected = sum(1 for d in devices[:count] if d.ws is not None and not d.ws.closed)
                    last_sent = await one_message_each(devices[:count], window)
                    sent_rows += connected
                    committed = await rows_committed(database_url, sent_rows)
                    lag = f"{committed - last_sent:.1f} s" if committed else "not within 120 s"
                    print(
                        f"{implementation:9} {count:6} devices: connected {connected} ({failed} failed) in "
                        f"{seconds:.1f} s; broker +{broker_mib:.0f} MiB ({broker_mib / count * 1000:.1f} per 1,000), "
                        f"edges +{edges_mib:.0f} MiB ({edges_mib / count * 1000:.1f} per 1,000); "
                        f"{connected} messages over {window:g} s, ingest lag after the last: {lag}",
                        flush=True,
                    )
                for device in devices:
                    if device.ws is not None:
                        await device.ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--counts", default="1000,5000,10000")
    parser.add_argument("--broker", default="both", choices=["mosquitto", "amqtt", "both"])
    parser.add_argument("--edges", type=int, default=2)
    parser.add_argument("--window", type=float, default=60.0)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    for implementation in ("mosquitto", "amqtt") if args.broker == "both" else (args.broker,):
        run(measure(implementation, counts, args.edges, args.window))


if __name__ == "__main__":
    main()
