"""Sustained MQTT -> PostgreSQL throughput of the ingest, beside a bare subscriber and a raw COPY
measured in the same run, and the flush duration for 10,000 vehicles.

- Publisher: a separate process (paho, QoS 1, 1,000 in flight) sends R readings flat out, each
  four messages (`refresh/lastVehicleState`, `drivetrain/soc`, `location/latitude`,
  `location/longitude`) for V vehicles; every reading is one history row. A Python publisher is
  slower than the subscribers measured here, so the messages are published while the subscriber
  is away (QoS 1, persistent session: the broker queues them) and the subscriber's rate is how
  fast it drains the queue once it connects.
- Bare subscriber: the programs' own MQTT connection (common.mqtt, QoS 1, the ingest's receive
  hook) that only counts: the ceiling any Python subscriber on this stack reaches.
- Ingest: the real one (write-ahead log, cache, PostgreSQL sink), in this process; measured from
  its connect until every history row is in PostgreSQL. Flush interval 1 s for this run, so the
  last scheduled flush adds at most 1 s.
- The same ingest with derivation off (DERIVE_PERIODS=false), into a database of its own: the
  baseline for the cost of deriving drives, charges and parks in each flush.
- Raw COPY: asyncpg `copy_records_to_table` of the same R rows into a copy of `vehicle_telemetry`.
- Flush of 10,000 vehicles, one reading each (10,000 state rows and 10,000 history rows): every
  one of the 63 topics the gateway publishes into an empty database (cold start), all 63 again with
  a newer reading (the full republish after a reconnect), then the steady state: a newer reading
  that changes 12 topics (time, SoC, range, position, speed, power, temperatures ...), as a driving
  car's poll does when the gateway publishes only what changed, five times over (the median).

    .venv/bin/python -m bench.ingest_throughput [--readings 25000] [--vehicles 500] [--broker mosquitto]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench import run
from bench.servers import broker, postgres
from common import topics
from common.mqtt import MqttConnection, MqttOptions
from common.settings import MqttSettings
from common.values import CONTRACT, Kind, encode
from ingest.app import Ingest, open_sink
from ingest.cache import TelemetryCache
from ingest.dead_letters import DeadLetters
from ingest.flusher import Flusher
from ingest.periods import PeriodSettings
from ingest.postgres_sink import PostgresSink
from ingest.settings import IngestSettings
from ingest.spool import Spool

T0 = datetime(2026, 6, 1, tzinfo=UTC)
MESSAGES_PER_READING = 4


def bench_vin(n: int) -> str:
    """A valid VIN (the ingest dead-letters anything else)."""
    return f"LSJBENCH{n:09d}"


def _reading_topics(i: int, vehicles: int) -> list[tuple[str, str]]:
    root = f"saic/bench/vehicles/{bench_vin(i % vehicles)}"
    ts = T0 + timedelta(seconds=i // vehicles)
    return [
        (f"{root}/{topics.REFRESH_LAST_VEHICLE_STATE}", ts.isoformat()),
        (f"{root}/{topics.DRIVETRAIN_SOC}", f"{50 + i % 50}.5"),
        (f"{root}/{topics.LOCATION_LATITUDE}", f"{52 + (i % 1000) / 10000:.6f}"),
        (f"{root}/{topics.LOCATION_LONGITUDE}", f"{4 + (i % 1000) / 10000:.6f}"),
    ]


def publish(port: int, password: str, readings: int, vehicles: int) -> None:
    """Runs in its own process, so the publisher's CPU is not the subscriber's."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}")
    client.username_pw_set("gateway", password)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    last = None
    for i in range(readings):
        for topic, payload in _reading_topics(i, vehicles):
            last = client.publish(topic, payload, qos=1)
        if i % 250 == 249:  # keep paho's own queue short
            last.wait_for_publish(120)  # type: ignore[union-attr]
    if last is not None:
        last.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def run_publisher(mqtt: MqttSettings, readings: int, vehicles: int) -> float:
    """Publish everything from a process of its own; returns its rate in messages/s."""
    process = multiprocessing.get_context("spawn").Process(
        target=publish, args=(mqtt.port, mqtt.password_for("gateway"), readings, vehicles)
    )
    started = time.perf_counter()
    process.start()
    process.join()
    return readings * MESSAGES_PER_READING / (time.perf_counter() - started)


async def bare_subscriber(mqtt: MqttSettings, readings: int, vehicles: int) -> tuple[float, float]:
    """(publisher rate, bare subscriber drain rate), in messages/s."""
    total = readings * MESSAGES_PER_READING
    received = 0
    done = asyncio.Event()

    def count(_topic: str, _payload: bytes, _retained: bool) -> None:
        nonlocal received
        received += 1
        if received == total:
            done.set()

    options = MqttOptions(
        component="ingest",
        client_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
        subscriptions=[("saic/+/vehicles/+/#", 1)],
        clean_session=False,
        on_receive=count,
    )
    await _subscribe_then_leave(MqttConnection(mqtt, options))
    publish_rate = await asyncio.to_thread(run_publisher, mqtt, readings, vehicles)
    return publish_rate, total / await drain_seconds(mqtt, options, done)


async def drain_seconds(mqtt: MqttSettings, options: MqttOptions, done: asyncio.Event) -> float:
    """Connect the programs' own MQTT connection to its persistent session and time it until `done`
    (set by its receive hook once the whole backlog is in)."""
    connection = MqttConnection(mqtt, options)
    started = time.perf_counter()
    task = asyncio.create_task(connection.run())
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - started
    await connection.close()
    task.cancel()
    return elapsed


async def _subscribe_then_leave(connection: MqttConnection) -> None:
    """Create the persistent session, so the broker queues what is published while we are away."""
    task = asyncio.create_task(connection.run())
    await connection.wait_connected(10)
    await connection.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def ingest_rate(
    mqtt: MqttSettings, url: str, readings: int, vehicles: int, derive: bool = True
) -> tuple[float, float]:
    """(messages received per second, history rows stored per second), both from the ingest's start;
    `derive`: drives, charges and parks derived in each flush (the default), or not."""
    total = readings * MESSAGES_PER_READING
    stop = asyncio.Event()
    sink = await open_sink("postgres", {"DATABASE_URL": url, "DERIVE_PERIODS": str(derive).lower()}, stop)
    assert sink is not None
    with tempfile.TemporaryDirectory() as data:
        settings = IngestSettings.from_env(
            {
                "INGEST_FLUSH_INTERVAL": "1",
                "INGEST_CLIENT_ID": f"bench-ingest-{uuid.uuid4().hex[:8]}",
                "INGEST_SPOOL_DIR": str(Path(data) / "spool"),
            }
        )
        await _subscribe_then_leave(Ingest(settings, mqtt, sink).mqtt)
        await asyncio.to_thread(run_publisher, mqtt, readings, vehicles)
        conn = await asyncpg.connect(url)
        ingest = Ingest(settings, mqtt, sink)
        started = time.perf_counter()
        task = asyncio.create_task(ingest.run(stop))
        received_at = None
        while True:
            if received_at is None and ingest.cache.accepted >= total:
                received_at = time.perf_counter()
            if await conn.fetchval("SELECT count(*) FROM vehicle_telemetry") >= readings:
                break
            await asyncio.sleep(0.2)
        stored = time.perf_counter() - started
        assert received_at is not None
        await conn.close()
        stop.set()
        await task
    await sink.close()
    return total / (received_at - started), readings / stored


async def copy_rate(url: str, readings: int, vehicles: int) -> float:
    rows = []
    for i in range(readings):
        values = {topic.split("/", 4)[-1]: payload for topic, payload in _reading_topics(i, vehicles)}
        rows.append(
            (
                bench_vin(i % vehicles),
                T0 + timedelta(seconds=i // vehicles),
                float(values[topics.DRIVETRAIN_SOC]),
                float(values[topics.LOCATION_LATITUDE]),
                float(values[topics.LOCATION_LONGITUDE]),
                json.dumps(values),
            )
        )
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE copy_target (LIKE vehicle_telemetry INCLUDING ALL)")
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "copy_target", records=rows, columns=["vin", "ts", "soc", "latitude", "longitude", "payload"]
        )
        return readings / (time.perf_counter() - started)
    finally:
        await conn.close()


STEADY_KEYS = (
    topics.REFRESH_LAST_VEHICLE_STATE,
    topics.DRIVETRAIN_SOC,
    topics.DRIVETRAIN_RANGE,
    topics.DRIVETRAIN_POWER,
    topics.DRIVETRAIN_CURRENT,
    topics.DRIVETRAIN_MILEAGE,
    topics.LOCATION_LATITUDE,
    topics.LOCATION_LONGITUDE,
    topics.LOCATION_SPEED,
    topics.LOCATION_HEADING,
    topics.LOCATION_POSITION,
    topics.CLIMATE_INTERIOR_TEMPERATURE,
)


def _full_vehicle(vin: str, ts: datetime, keys: tuple[str, ...] | None = None) -> list[tuple[str, bytes]]:
    """Every topic the gateway publishes for a car, with plausible values."""
    sample: dict[Kind, object] = {
        Kind.BOOL: False,
        Kind.INT: 21,
        Kind.FLOAT: 52.25,
        Kind.TEXT: "on",
        Kind.JSON: {"latitude": 52.1, "longitude": 4.3, "altitude": 2},
        Kind.TIMESTAMP: ts,
    }

    def value(key: str) -> object:
        contract = CONTRACT[key]
        plain = sample[contract.kind]
        if contract.low is None or contract.high is None or not isinstance(plain, int | float):
            return plain
        return type(plain)(min(max(plain, contract.low), contract.high))  # inside the key's range

    root = f"saic/bench/vehicles/{vin}"
    # The reading's time first, as the gateway publishes it: it opens a new reading.
    keys = tuple(sorted(keys or CONTRACT, key=lambda k: k != topics.REFRESH_LAST_VEHICLE_STATE))
    return [(f"{root}/{key}", encode(value(key)).encode()) for key in keys]  # type: ignore[arg-type]


STEADY_FLUSHES = 5


async def flush_of(url: str, vehicles: int, derive: bool = True) -> list[float]:
    """Flush durations (s): cold start, full republish, steady state (the median of STEADY_FLUSHES:
    one steady flush alone ranged 0.9-1.6 s within an hour on the same code)."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=3)
    sink = PostgresSink(pool, PeriodSettings.from_env({}) if derive else None)
    await sink.ready()
    cache = TelemetryCache("saic")
    durations = []
    with tempfile.TemporaryDirectory() as spool:
        flusher = Flusher(cache, sink, Spool(Path(spool), 10**9), DeadLetters())
        for round_, keys in enumerate((None, None, *[STEADY_KEYS] * STEADY_FLUSHES)):
            for n in range(vehicles):
                for topic, payload in _full_vehicle(bench_vin(n), T0 + timedelta(minutes=round_), keys):
                    cache.add(topic, payload)
            started = time.perf_counter()
            result = await flusher.flush()
            durations.append(time.perf_counter() - started)
            assert result is not None
            assert (result.state_rows, result.telemetry_rows) == (vehicles, vehicles), result
    await sink.close()
    return [*durations[:2], statistics.median(durations[2:])]


async def main(readings: int, vehicles: int, implementation: str, flush_vehicles: int) -> None:
    total = readings * MESSAGES_PER_READING
    print(f"{readings} readings = {total} QoS 1 messages from {vehicles} vehicles, broker {implementation}")
    with broker(implementation) as mqtt, postgres() as url:
        publisher, bare = await bare_subscriber(mqtt, readings, vehicles)
        print(f"publisher (context)     {publisher:9.0f} msg/s")
        print(f"bare subscriber         {bare:9.0f} msg/s")
        with postgres() as plain_url:
            _, plain_rows = await ingest_rate(mqtt, plain_url, readings, vehicles, derive=False)
        print(f"ingest, no derivation   {plain_rows * MESSAGES_PER_READING:9.0f} msg/s end to end (baseline)")
        received, rows = await ingest_rate(mqtt, url, readings, vehicles)
        print(f"ingest, received        {received:9.0f} msg/s   ({received / bare:.2f} x the bare subscriber)")
        print(
            f"ingest, end to end      {rows * MESSAGES_PER_READING:9.0f} msg/s = {rows:.0f} history rows/s "
            f"with drives, charges and parks derived ({rows / plain_rows:.2f} x without)"
        )
        copy = await copy_rate(url, readings, vehicles)
        print(f"raw COPY                {copy:9.0f} rows/s   (ingest end to end = {rows / copy:.2f} x COPY)")
    with postgres() as url:
        plain = await flush_of(url, flush_vehicles, derive=False)
    with postgres() as url:
        derived = await flush_of(url, flush_vehicles)
    print(f"flush of {flush_vehicles} vehicles (a state row and a history row each), derivation off / on:")
    for name, off, on in zip(
        ("cold start, 63 topics each    ", "full republish, 63 topics each", "steady state, 12 topics each* "),
        plain,
        derived,
        strict=True,
    ):
        print(f"  {name}  {off * 1000:7.0f} ms / {on * 1000:7.0f} ms")
    print(f"  * the median of {STEADY_FLUSHES} steady flushes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=25_000)
    parser.add_argument("--vehicles", type=int, default=500)
    parser.add_argument("--flush-vehicles", type=int, default=10_000)
    parser.add_argument("--broker", default="mosquitto", choices=["mosquitto", "amqtt"])
    args = parser.parse_args()
    run(main(args.readings, args.vehicles, args.broker, args.flush_vehicles))
