"""MQTT clients under the project's own patterns, each in a process of its own, on Mosquitto:

- drain: a 100,000-message QoS 1 backlog queued for a persistent session (the ingest after a
  restart), each message handled in the client's receive callback before it is acknowledged
  where the client allows that (the ingest's write-ahead-log guarantee);
- burst: 50,000 QoS 1 publishes as fast as the client takes them, until every PUBACK is in (the
  gateway's republish after a reconnect).

Candidates: the project's connection (`common.mqtt`, aiomqtt over paho, TCP_NODELAY), paho's own
threaded loop (TCP_NODELAY set the same way), gmqtt and zmqtt. zmqtt (pure asyncio) acknowledges
when the application calls `message.ack()`, after taking the message from its subscription queue.
gmqtt acknowledges after the callback only with `optimistic_acknowledgement=False` and a coroutine
`on_message`: it sends the PUBACK when the coroutine's task completes. A plain function there is
never acknowledged, and the broker stops after its in-flight window (20 messages on Mosquitto).

    .venv/bin/python -m bench.mqtt_clients [--backlog 25000] [--burst 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.ingest_throughput import MESSAGES_PER_READING, drain_seconds, run_publisher
from bench.servers import broker
from common.mqtt import MqttConnection, MqttOptions, set_tcp_nodelay
from common.settings import MqttSettings
from gateway.publisher import PUBLISH_CHUNK

SUBSCRIPTION = "saic/+/vehicles/+/#"
BURST_TOPIC = "saic/bench/vehicles/BURST/drivetrain/soc"


def _paho(client_id: str, user: str, password: str, clean: bool) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    client.username_pw_set(user, password)
    client.on_socket_open = lambda _c, _u, sock: set_tcp_nodelay(sock)
    client.max_inflight_messages_set(1000)
    return client


def create_session(port: int, password: str, client_id: str) -> None:
    """A persistent session subscribed to the telemetry, so that the broker queues the backlog."""
    client = _paho(client_id, "ingest", password, clean=False)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe(SUBSCRIPTION, qos=1)
    subscribed.wait(10)
    client.disconnect()
    client.loop_stop()


# -- drain, in the candidate's own process ---------------------------------------------------


def drain_paho(port: int, password: str, client_id: str, total: int) -> float:
    done, count = threading.Event(), [0]

    def on_message(_c: Any, _u: Any, _m: Any) -> None:  # paho acknowledges when this returns
        count[0] += 1
        if count[0] == total:
            done.set()

    client = _paho(client_id, "ingest", password, clean=False)
    client.on_message = on_message
    started = time.perf_counter()
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(300)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return total / elapsed


def drain_project(port: int, password: str, client_id: str, total: int) -> float:
    async def run() -> float:
        done, count = asyncio.Event(), [0]

        def receive(
            _topic: str, _payload: bytes, _retained: bool
        ) -> None:  # before the PUBACK (MqttOptions.on_receive)
            count[0] += 1
            if count[0] == total:
                done.set()

        settings = MqttSettings.from_env({"MQTT_PORT": str(port), "MQTT_INGEST_PASSWORD": password})
        options = MqttOptions(
            component="ingest",
            client_id=client_id,
            subscriptions=[(SUBSCRIPTION, 1)],
            clean_session=False,
            on_receive=receive,
        )
        return total / await drain_seconds(settings, options, done)

    return asyncio.run(run())


def drain_gmqtt(port: int, password: str, client_id: str, total: int) -> float:
    import gmqtt
    from gmqtt.mqtt.constants import MQTTv311

    async def run() -> float:
        done, count = asyncio.Event(), [0]

        async def on_message(_client: Any, _topic: str, _payload: bytes, _qos: int, _properties: Any) -> int:
            count[0] += 1  # the PUBACK goes when this coroutine's task completes
            if count[0] == total:
                done.set()
            return 0

        client = gmqtt.Client(client_id, clean_session=False, optimistic_acknowledgement=False)
        client.set_auth_credentials("ingest", password)
        client.on_message = on_message
        started = time.perf_counter()
        await client.connect("127.0.0.1", port, version=MQTTv311)
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.perf_counter() - started
        await client.disconnect()
        return total / elapsed

    return asyncio.run(run())


# -- burst, in the candidate's own process ---------------------------------------------------


def burst_paho(port: int, password: str, count: int) -> float:
    client = _paho(f"burst-{uuid.uuid4().hex[:8]}", "gateway", password, clean=True)
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.perf_counter()
    infos = [client.publish(BURST_TOPIC, b"50.5", qos=1) for _ in range(count)]
    for info in infos:
        info.wait_for_publish(120)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return count / elapsed


def burst_project(port: int, password: str, count: int, one_by_one: bool = False) -> float:
    """`publish_many` in the gateway's chunks (`one_by_one`: a `publish()` call for each message, as
    a command's single message goes)."""

    async def run() -> float:
        settings = MqttSettings.from_env({"MQTT_PORT": str(port), "MQTT_GATEWAY_PASSWORD": password})
        connection = MqttConnection(
            settings, MqttOptions(component="gateway", client_id=f"burst-{uuid.uuid4().hex[:8]}")
        )
        task = asyncio.create_task(connection.run())
        await connection.wait_connected(10)
        started = time.perf_counter()
        if one_by_one:
            await asyncio.gather(*(connection.publish(BURST_TOPIC, b"50.5") for _ in range(count)))
        else:
            for start in range(0, count, PUBLISH_CHUNK):
                await connection.publish_many([(BURST_TOPIC, b"50.5")] * min(PUBLISH_CHUNK, count - start))
        elapsed = time.perf_counter() - started
        await connection.close()
        task.cancel()
        return count / elapsed

    return asyncio.run(run())


def burst_gmqtt(port: int, password: str, count: int) -> float:
    import gmqtt
    from gmqtt.mqtt.constants import MQTTv311

    async def run() -> float:
        client = gmqtt.Client(f"burst-{uuid.uuid4().hex[:8]}")
        client.set_auth_credentials("gateway", password)
        await client.connect("127.0.0.1", port, version=MQTTv311)
        started = time.perf_counter()
        for _ in range(count):
            client.publish(BURST_TOPIC, b"50.5", qos=1)
        # Every PUBACK in: gmqtt has no public way to wait for them, so poll its storage.
        while not client._persistent_storage.is_empty:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - started
        await client.disconnect()
        return count / elapsed

    return asyncio.run(run())


def drain_zmqtt(port: int, password: str, client_id: str, total: int) -> float:
    from zmqtt import QoS, create_client

    async def run() -> float:
        client = create_client(
            "127.0.0.1",
            port,
            client_id=client_id,
            clean_session=False,
            username="ingest",
            password=password,
            session_replay_buffer_size=0,
        )
        started = time.perf_counter()
        async with client, client.subscribe(SUBSCRIPTION, qos=QoS.AT_LEAST_ONCE, auto_ack=False) as messages:
            count = 0
            async for message in messages:
                count += 1
                await message.ack()  # the PUBACK after the handling, as the ingest needs
                if count == total:
                    break
            elapsed = time.perf_counter() - started
        return total / elapsed

    return asyncio.run(run())


def burst_zmqtt(port: int, password: str, count: int) -> float:
    from zmqtt import QoS, create_client

    async def run() -> float:
        client = create_client(
            "127.0.0.1", port, client_id=f"burst-{uuid.uuid4().hex[:8]}", username="gateway", password=password
        )
        async with client:
            started = time.perf_counter()
            await asyncio.gather(*(client.publish(BURST_TOPIC, b"50.5", qos=QoS.AT_LEAST_ONCE) for _ in range(count)))
            elapsed = time.perf_counter() - started
        return count / elapsed

    return asyncio.run(run())


def in_process(target: Callable[..., float], *args: Any) -> float:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return float(pool.apply(target, args))


CANDIDATES: dict[str, tuple[Callable[..., float], Callable[..., float], str]] = {
    "project (aiomqtt)": (drain_project, burst_project, "yes"),
    "paho, own loop": (drain_paho, burst_paho, "yes"),
    "gmqtt 0.8.0": (drain_gmqtt, burst_gmqtt, "yes, with a coroutine callback (a task per message)"),
    "zmqtt 0.2.5": (drain_zmqtt, burst_zmqtt, "yes, `await message.ack()` (auto_ack=False)"),
}


def main(readings: int, burst: int) -> None:
    backlog = readings * MESSAGES_PER_READING
    print(f"Mosquitto; drain of a {backlog:,}-message QoS 1 backlog, burst of {burst:,} QoS 1 publishes")
    print(f"{'client':20} {'drain msg/s':>12} {'burst msg/s':>12}  ack after the callback")
    results = {}
    with broker("mosquitto") as mqtt:
        for name, (drain, publish, acks_after) in CANDIDATES.items():
            client_id = f"drain-{uuid.uuid4().hex[:8]}"
            create_session(mqtt.port, mqtt.password_for("ingest"), client_id)
            run_publisher(mqtt, readings, 500)
            drained = in_process(drain, mqtt.port, mqtt.password_for("ingest"), client_id, backlog)
            published = in_process(publish, mqtt.port, mqtt.password_for("gateway"), burst)
            results[name] = (drained, published)
            print(f"{name:20} {drained:12,.0f} {published:12,.0f}  {acks_after}")
        one_by_one = in_process(burst_project, mqtt.port, mqtt.password_for("gateway"), burst, True)
    print(f"{'project, publish() each':20} {'':>12} {one_by_one:12,.0f}  (a task and a timeout per message)")
    base_drain, base_burst = results["project (aiomqtt)"]
    for name, (drained, published) in results.items():
        print(f"  {name:20} drain {drained / base_drain:5.2f} x, burst {published / base_burst:5.2f} x the project's")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=25_000, help="readings of four messages each")
    parser.add_argument("--burst", type=int, default=50_000)
    args = parser.parse_args()
    main(args.backlog, args.burst)
