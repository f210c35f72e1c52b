"""The two brokers side by side in one run: throughput, connections, routing after churn.

- **Throughput** at QoS 0 and 1: `mosquitto_pub -l` sends N 100-byte lines flat out and
  `mosquitto_sub -C N` receives them (Debian's `mosquitto-clients`; C clients, so the broker is the
  limit). Rate = N / (publisher start to subscriber exit). Without the C clients, the programs' own
  client (aiomqtt) does both ends.
- **Connections**: C idle authenticated connections opened 200 at a time; the connect rate (first
  CONNECT to last CONNACK), the broker's RSS per 1,000 of them, and its RSS after they all closed.
- **Routing after churn**: the QoS 1 round-trip p50 through the broker before and after 5,000
  subscribe/unsubscribe pairs of distinct filters (amqtt kept every filter it ever routed).

    .venv/bin/python -m bench.broker_throughput [--messages 50000] [--connections 2000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import shutil
import statistics
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import aiomqtt

from bench import run
from bench.servers import broker_process
from common.settings import MqttSettings

PAYLOAD = b"x" * 100
TOPIC = "saic/bench/vehicles/LSJTEST0000000001/drivetrain/soc"
CONNECT_CONCURRENCY = 200
CHURN = 5_000
_quiet = logging.getLogger("bench.aiomqtt")
_quiet.setLevel(logging.ERROR)


def _client(settings: MqttSettings, user: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        settings.port,
        username=user,
        password=settings.password_for(user),
        identifier=f"bench-{user}-{time.monotonic_ns()}",
        max_inflight_messages=1000,
        protocol=aiomqtt.ProtocolVersion.V311,
        logger=_quiet,
    )


async def measure(settings: MqttSettings, qos: int, count: int) -> tuple[float, int]:
    """aiomqtt at both ends: (messages/s, messages delivered)."""
    async with _client(settings, "api") as sub, _client(settings, "gateway") as pub:
        await sub.subscribe("saic/bench/vehicles/+/drivetrain/soc", qos=qos)
        received = 0
        last = time.perf_counter()
        done = asyncio.Event()

        async def consume() -> None:
            nonlocal received, last
            async for _ in sub.messages:
                received += 1
                last = time.perf_counter()
                if received == count:
                    done.set()
                    return

        consumer = asyncio.create_task(consume())
        started = time.perf_counter()
        for start in range(0, count, 500):
            await asyncio.gather(
                *(
                    pub.publish(f"saic/bench/vehicles/V{i % 10}/drivetrain/soc", PAYLOAD, qos=qos)
                    for i in range(start, min(start + 500, count))
                )
            )
        while not done.is_set() and time.perf_counter() - last < 3:  # noqa: ASYNC110 - also a stall timeout
            await asyncio.sleep(0.1)
        consumer.cancel()
        return received / (last - started), received


def _c_client(program: str, settings: MqttSettings, user: str, *args: str) -> list[str]:
    password = settings.password_for(user) or ""
    common = ["-h", "127.0.0.1", "-p", str(settings.port), "-u", user, "-P", password, "-V", "mqttv311"]
    return [program, *common, "-i", f"bench-{user}-{time.monotonic_ns()}", *args]


def measure_c_clients(settings: MqttSettings, qos: int, count: int) -> tuple[float, int]:
    """mosquitto_pub and mosquitto_sub at the two ends: (messages/s, messages delivered)."""
    with tempfile.TemporaryDirectory() as scratch:
        lines, received = Path(scratch) / "in", Path(scratch) / "out"
        lines.write_bytes((PAYLOAD + b"\n") * count)
        with received.open("wb") as out:
            sub = subprocess.Popen(
                _c_client("mosquitto_sub", settings, "api", "-t", TOPIC, "-q", str(qos), "-C", str(count)), stdout=out
            )
            time.sleep(1)  # subscribed by then; mosquitto_sub has no ready signal
            started = time.perf_counter()
            with lines.open("rb") as source:
                pub = subprocess.run(
                    _c_client("mosquitto_pub", settings, "gateway", "-t", TOPIC, "-q", str(qos), "-l"),
                    stdin=source,
                    check=False,
                )
            try:
                sub.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sub.terminate()
                sub.wait()
            elapsed = time.perf_counter() - started
        delivered = received.read_bytes().count(b"\n")
    if pub.returncode != 0:
        raise RuntimeError(f"mosquitto_pub failed with {pub.returncode}")
    return delivered / elapsed, delivered


def _connect_packet(client_id: str, user: str, password: str) -> bytes:
    def field(text: str) -> bytes:
        data = text.encode()
        return struct.pack("!H", len(data)) + data

    body = field("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 120)
    body += field(client_id) + field(user) + field(password)
    return bytes([0x10, len(body)]) + body


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def connections(settings: MqttSettings, pid: int, count: int) -> tuple[float, float, float]:
    """(connects/s, RSS MiB per 1,000 idle connections, RSS MiB growth left after all closed)."""
    password = settings.password_for("ingest") or ""
    before = rss_mib(pid)
    writers: list[asyncio.StreamWriter] = []
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(n: int) -> None:
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", settings.port)
            writer.write(_connect_packet(f"idle-{n}", "ingest", password))
            connack = await asyncio.wait_for(reader.readexactly(4), 30)
            if connack[3] != 0:
                raise RuntimeError(f"connection {n} refused: {connack.hex()}")
            writers.append(writer)

    started = time.perf_counter()
    await asyncio.gather(*(connect(n) for n in range(count)))
    rate = count / (time.perf_counter() - started)
    await asyncio.sleep(2)
    per_thousand = (rss_mib(pid) - before) / count * 1000
    for writer in writers:
        writer.close()
    await asyncio.sleep(5)  # amqtt drops a closed clean session within a second
    return rate, per_thousand, rss_mib(pid) - before


async def round_trip_p50(settings: MqttSettings, samples: int = 300) -> float:
    async with _client(settings, "api") as sub, _client(settings, "gateway") as pub:
        await sub.subscribe(TOPIC, qos=1)
        times = []
        messages = aiter(sub.messages)
        for _ in range(samples):
            started = time.perf_counter()
            await pub.publish(TOPIC, PAYLOAD, qos=1)
            await anext(messages)
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)


async def churn(settings: MqttSettings, pairs: int) -> None:
    async with _client(settings, "api") as churner:
        for n in range(pairs):
            topic_filter = f"saic/churn/vehicles/V{n}/#"
            await churner.subscribe(topic_filter, qos=1)
            await churner.unsubscribe(topic_filter)


def _raise_open_files_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the brokers inherit it


async def main(count: int, connection_count: int, rounds: int) -> None:
    _raise_open_files_limit()
    c_clients = shutil.which("mosquitto_pub") is not None and shutil.which("mosquitto_sub") is not None
    clients = "mosquitto_pub / mosquitto_sub" if c_clients else "aiomqtt (mosquitto-clients not installed)"
    print(f"throughput with {clients}, {count:,} messages of {len(PAYLOAD)} bytes; {connection_count:,} connections")
    results: dict[tuple[str, str], float] = {}
    for implementation in ("mosquitto", "amqtt"):
        with broker_process(implementation) as (settings, pid):
            for qos in (0, 1):
                if c_clients:
                    rate, delivered = await asyncio.to_thread(measure_c_clients, settings, qos, count)
                else:
                    rate, delivered = await measure(settings, qos, count)
                results[implementation, f"QoS {qos} msg/s"] = rate
                print(f"{implementation:9s} QoS {qos}: {rate:9,.0f} msg/s ({delivered:,}/{count:,} delivered)")
            for round_ in range(1, rounds + 1):  # later rounds show whether memory is reused or grows
                rate, per_thousand, left = await connections(settings, pid, connection_count)
                print(
                    f"{implementation:9s} connections, round {round_}: {rate:7,.0f} connects/s, "
                    f"{per_thousand:5.1f} MiB per 1,000 idle, {left:+.1f} MiB left after all closed, "
                    f"RSS now {rss_mib(pid):.1f} MiB"
                )
                if round_ == 1:
                    results[implementation, "connects/s"] = rate
                    results[implementation, "MiB per 1,000 connections"] = per_thousand
            before = await round_trip_p50(settings)
            await churn(settings, CHURN)
            after = await round_trip_p50(settings)
            churned = f"after {CHURN:,} subscribe/unsubscribe pairs"
            print(f"{implementation:9s} round trip p50: {before:.2f} ms, {churned}: {after:.2f} ms")
    for figure in ("QoS 0 msg/s", "QoS 1 msg/s", "connects/s", "MiB per 1,000 connections"):
        ratio = results["amqtt", figure] / results["mosquitto", figure]
        print(f"{figure}: amqtt / Mosquitto = {ratio:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--connections", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=1, help="connect and close the connections this many times")
    arguments = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        run(main(arguments.messages, arguments.connections, arguments.rounds))
