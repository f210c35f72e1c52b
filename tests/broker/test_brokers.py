"""Both brokers, started as `python -m broker`, enforce the same credentials and ACL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import pytest

from common.settings import COMPONENTS, INTEGRATIONS_USER, MqttSettings
from local_stack.ports import free_port, wait_for_port
from tests.conftest import ROOT, RunningBroker, start_broker, stop_process
from tests.helpers import client, collect

HEALTHCHECK = ROOT / "scripts" / "healthcheck"


async def test_anonymous_client_is_refused(broker: RunningBroker) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="anon", timeout=5):
            pass


async def test_wrong_password_is_refused(broker: RunningBroker) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", broker.port, username="ingest", password="nope", timeout=5):
            pass


async def test_ingest_cannot_publish_commands(broker: RunningBroker) -> None:
    settings = broker.mqtt_settings()
    cmd = "saic/acl/vehicles/VACL1/cmd/lock"
    async with client(settings, "gateway") as listener, client(settings, "ingest") as ingest:
        await listener.subscribe("saic/+/vehicles/+/cmd/+", qos=1)
        await ingest.publish(cmd, b'{"id": "forged"}', qos=1)
        async with client(settings, "api") as api:
            await api.publish(cmd, b'{"id": "genuine"}', qos=1)
        received = await collect(listener, 2, timeout=2)
    assert [m.payload for m in received] == [b'{"id": "genuine"}']


async def test_nothing_outside_the_acl_is_delivered(broker: RunningBroker) -> None:
    settings = broker.mqtt_settings()
    async with client(settings, "ingest") as ingest:
        # This test's own account: retained telemetry other tests left on the session broker stays out.
        granted = await ingest.subscribe([("saic/sub/vehicles/+/cmd/+", 1), ("saic/sub/vehicles/+/drivetrain/#", 1)])
        async with client(settings, "api") as api:
            await api.publish("saic/sub/vehicles/VSUB1/cmd/lock", b"{}", qos=1)
        async with client(settings, "gateway") as gateway:
            await gateway.publish("saic/sub/vehicles/VSUB1/drivetrain/soc", b"50", qos=1)
        received = await collect(ingest, 2, timeout=2)
    assert [m.topic.value for m in received] == ["saic/sub/vehicles/VSUB1/drivetrain/soc"]
    codes = [getattr(g, "value", g) for g in granted]
    # amqtt refuses the subscription outright; Mosquitto's acl_file grants it and filters delivery.
    assert codes[0] == (128 if broker.implementation == "amqtt" else 1)


async def test_retained_messages_respect_the_acl(broker: RunningBroker) -> None:
    settings = broker.mqtt_settings()
    secret = "saic/ret/vehicles/VRET1/cmd/unlock"
    allowed = "saic/ret/vehicles/VRET1/drivetrain/soc"
    # An API client subscribed to everything it may read: amqtt used to send retained messages
    # matching *any* client's filter to every newcomer.
    async with client(settings, "api") as api:
        await api.subscribe("saic/+/vehicles/#", qos=1)
        async with client(settings, "gateway") as gateway:
            await gateway.publish(secret, b"retained-secret", qos=1, retain=True)
            await gateway.publish(allowed, b"42", qos=1, retain=True)
        async with client(settings, "ingest") as ingest:
            await ingest.subscribe("saic/ret/vehicles/+/drivetrain/#", qos=1)  # this test's account only
            received = await collect(ingest, 2, timeout=2)
        async with client(settings, "gateway") as gateway:
            await gateway.publish(secret, b"", qos=1, retain=True)
            await gateway.publish(allowed, b"", qos=1, retain=True)
    assert [(m.topic.value, m.payload) for m in received] == [(allowed, b"42")]


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def _packet(kind: int, body: bytes) -> bytes:
    length, encoded = len(body), b""
    while True:
        digit, length = length % 128, length // 128
        encoded += bytes([digit | (0x80 if length else 0)])
        if not length:
            return bytes([kind]) + encoded + body


def _connect(
    client_id: str,
    username: str,
    password: str,
    *,
    level: int = 4,
    keepalive: int = 60,
    clean: bool = True,
    will: tuple[str, bytes] | None = None,
) -> bytes:
    """A raw CONNECT: user name and password; a retained QoS 1 will when given."""
    flags = 0x80 | 0x40 | (0x02 if clean else 0) | (0x20 | 0x08 | 0x04 if will else 0)
    variable = _string("MQTT") + bytes([level, flags]) + struct.pack("!H", keepalive)
    if level == 5:
        variable += b"\x00"  # no properties
    payload = _string(client_id) + (_string(will[0]) + _string(will[1]) if will else b"")
    return _packet(0x10, variable + payload + _string(username) + _string(password))


async def test_silent_client_is_dropped_and_its_will_fires(broker: RunningBroker) -> None:
    settings = broker.mqtt_settings()
    will_topic = "saic/_internal/lwt"
    async with client(settings, "api") as api:
        await api.subscribe(will_topic, qos=1)
        await collect(api, 1, timeout=0.5)  # drain a retained value left by other tests
        with socket.create_connection(("127.0.0.1", broker.port)) as sock:
            password = settings.password_for("gateway")
            assert password is not None
            sock.sendall(_connect("silent-gw", "gateway", password, keepalive=1, will=(will_topic, b"dead")))
            assert sock.recv(4)[:1] == b"\x20"  # CONNACK; then silence with the socket open
            # Keep-alive 1 s: the broker must drop us after ~1.5 s of silence (Mosquitto checks
            # every few seconds); amqtt unpatched never did, so the will would never come.
            received = await collect(api, 1, timeout=15)
    assert [m.payload for m in received] == [b"dead"]
    async with client(settings, "gateway") as gateway:
        await gateway.publish(will_topic, b"", qos=1, retain=True)


def _healthcheck(port: int, password: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MQTT_PORT": str(port), "MQTT_MONITOR_PASSWORD": password}
    return subprocess.run([sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, text=True, timeout=10)


def test_healthcheck_sees_sys_topics(broker: RunningBroker) -> None:
    assert _healthcheck(broker.port, broker.passwords["monitor"]).returncode == 0


def test_healthcheck_fails_with_wrong_credentials(broker: RunningBroker) -> None:
    result = _healthcheck(broker.port, "wrong")
    assert result.returncode == 1
    assert "refused" in result.stderr


def test_healthcheck_fails_within_its_timeout_when_no_broker_answers() -> None:
    # A listener that accepts TCP but never speaks MQTT: the probe must give up after ~3 s.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        started = time.monotonic()
        result = _healthcheck(port, "x")
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert elapsed < 6
    assert _healthcheck(free_port(), "x").returncode == 1


@pytest.mark.parametrize("implementation", ["amqtt", "mosquitto"])
def test_sigterm_stops_the_broker_cleanly(implementation: str, tmp_path: Path) -> None:
    from broker.mosquitto import find_mosquitto

    if implementation == "mosquitto" and find_mosquitto() is None:
        pytest.skip("Mosquitto is not installed")
    running = start_broker(implementation, tmp_path)
    started = time.monotonic()
    running.process.send_signal(15)
    try:
        code = running.process.wait(timeout=5)
    finally:
        stop_process(running.process)
    assert code == 0
    assert time.monotonic() - started < 5


async def test_message_flow_under_concurrent_clients(broker: RunningBroker) -> None:
    settings = broker.mqtt_settings()
    async with client(settings, "api") as api, client(settings, "gateway") as gateway:
        await api.subscribe("saic/flow/vehicles/+/drivetrain/#", qos=1)
        await asyncio.gather(
            *(gateway.publish(f"saic/flow/vehicles/V{i}/drivetrain/soc", str(i).encode(), qos=1) for i in range(200))
        )
        received = await collect(api, 200, timeout=10)
    assert sorted(int(m.payload) for m in received) == list(range(200))


async def test_mosquittos_log_lines_arrive_as_they_happen(tmp_path: Path) -> None:
    """Into a pipe (supervisord's), stdout is block-buffered: a notice waited minutes for 4 KiB."""
    from broker.mosquitto import find_mosquitto

    if find_mosquitto() is None:
        pytest.skip("Mosquitto is not installed (scripts/test installs it with apt-get when run as root)")
    port = free_port()
    passwords = {c: secrets.token_urlsafe(12) for c in (*COMPONENTS, INTEGRATIONS_USER)}
    env = {
        **os.environ,
        **{f"MQTT_{c.upper()}_PASSWORD": password for c, password in passwords.items()},
        "MQTT_PORT": str(port),
        "BROKER_IMPLEMENTATION": "mosquitto",
        "BROKER_RUNTIME_DIR": str(tmp_path),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        await asyncio.to_thread(wait_for_port, port)
        async with client(MqttSettings.from_env(env), "gateway", client_id="log-line-test"):
            assert process.stdout is not None
            seen = b""
            async with asyncio.timeout(10):
                while b"log-line-test" not in seen:  # "New client connected from ... as log-line-test"
                    line = await process.stdout.readline()
                    assert line, f"the broker ended: {seen.decode(errors='replace')}"
                    seen += line
    finally:
        process.terminate()
        await process.wait()


async def test_a_wrong_password_cannot_take_over_a_client_id(broker: RunningBroker) -> None:
    """amqtt destroyed the session of a taken client id before it checked the password: one such
    CONNECT left the real ingest connected but receiving nothing, silently."""
    settings = broker.mqtt_settings()
    victim_id = f"victim-{secrets.token_hex(4)}"
    async with client(settings, "ingest", victim_id, clean_session=False) as victim:
        await victim.subscribe("saic/takeover/vehicles/+/drivetrain/soc", qos=1)
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(
                "127.0.0.1", broker.port, identifier=victim_id, username="ingest", password="nope", timeout=5
            ):
                pass
        async with client(settings, "gateway") as gateway:
            for n in range(5):
                await gateway.publish(f"saic/takeover/vehicles/VTAKE{n}/drivetrain/soc", b"50", qos=1)
            received = await collect(victim, 5, timeout=5)
    assert len(received) == 5


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: broker\r\n\r\n",
        bytes.fromhex("16030100a5010000a10303") + bytes(32),  # the start of a TLS ClientHello
        secrets.token_bytes(64),
        bytes([0x30, 0x05, 0x00, 0x01, ord("t"), ord("x"), ord("y")]),  # a PUBLISH before any CONNECT
        bytes([0x10, 0x40, 0x00, 0x04]) + b"MQTT",  # a CONNECT cut short
        b"",  # nothing at all
    ],
    ids=["http", "tls-hello", "random", "publish-first", "truncated-connect", "silent"],
)
async def test_a_connection_that_sends_no_valid_connect_is_closed(
    broker: RunningBroker, garbage: bytes, request: pytest.FixtureRequest
) -> None:
    """amqtt kept such connections open for over a minute; Mosquitto closes the malformed ones at once."""
    if broker.implementation == "mosquitto" and garbage in (b"", bytes([0x10, 0x40, 0x00, 0x04]) + b"MQTT"):
        request.applymarker(
            pytest.mark.xfail(
                reason="Mosquitto 2.0.11 has no CONNECT timeout: a silent or cut-short CONNECT stayed open "
                "over 90 s (measured); amqtt here closes it after CONNECT_TIMEOUT",
                strict=True,
            )
        )
    reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
    try:
        writer.write(garbage)
        await writer.drain()
        started = time.monotonic()
        with contextlib.suppress(ConnectionError):
            while await asyncio.wait_for(reader.read(1024), 8):
                pass  # whatever the broker answers before it closes (a refusing CONNACK, say)
        assert time.monotonic() - started < 8  # CONNECT_TIMEOUT (5 s) and some slack
    finally:
        writer.close()


async def test_what_a_persistent_session_missed_arrives_as_live(broker: RunningBroker) -> None:
    """MQTT-3.3.1-9: RETAIN=0 on a message sent because of a subscription, not a retained one; amqtt
    set RETAIN=1 on what it had queued for an offline session."""
    settings = broker.mqtt_settings()
    session_id = f"persistent-{secrets.token_hex(4)}"
    topic = f"saic/queued/vehicles/VQUEUE{secrets.token_hex(2)}/drivetrain/soc"
    async with client(settings, "ingest", session_id, clean_session=False) as subscriber:
        await subscriber.subscribe(topic, qos=1)
    async with client(settings, "gateway") as gateway:
        await gateway.publish(topic, b"51", qos=1)
        async with client(settings, "ingest", session_id, clean_session=False) as subscriber:
            [message] = await collect(subscriber, 1, timeout=5)
    assert (message.payload, message.retain) == (b"51", False)


@pytest.mark.parametrize(("publish_qos", "subscribe_qos"), [(0, 1), (1, 0), (1, 1)])
async def test_a_message_is_delivered_at_the_lower_of_the_two_qos(
    broker: RunningBroker, publish_qos: int, subscribe_qos: int
) -> None:
    """MQTT 3.1.1 section 3.8.4; amqtt delivered at the subscription's QoS whatever the publisher sent."""
    settings = broker.mqtt_settings()
    topic = f"saic/qos/vehicles/VQOS{secrets.token_hex(3)}/drivetrain/soc"
    async with client(settings, "ingest") as subscriber, client(settings, "gateway") as gateway:
        await subscriber.subscribe(topic, qos=subscribe_qos)
        await gateway.publish(topic, b"52", qos=publish_qos)
        [message] = await collect(subscriber, 1, timeout=5)
    assert message.qos == min(publish_qos, subscribe_qos)


async def test_a_message_in_flight_to_a_subscriber_that_dies_is_redelivered(broker: RunningBroker) -> None:
    """MQTT-4.4.0-1: a persistent session's unacknowledged QoS 1 message is sent again when it
    reconnects. amqtt dropped it, so a kill -9 of the ingest lost what was in flight."""
    settings = broker.mqtt_settings()
    session_id = f"dies-{secrets.token_hex(4)}"
    topic = f"saic/inflight/vehicles/VFLY{secrets.token_hex(2)}/drivetrain/soc"
    password = settings.password_for("ingest")
    assert password is not None
    # A subscriber that reads the PUBLISH and dies before its PUBACK, on a raw socket.
    reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
    writer.write(_connect(session_id, "ingest", password, clean=False))
    writer.write(_packet(0x82, struct.pack("!H", 1) + _string(topic) + bytes([1])))
    await writer.drain()
    async with client(settings, "gateway") as gateway:
        received = b""
        deadline = time.monotonic() + 5
        await asyncio.sleep(0.3)  # CONNACK and SUBACK first
        await gateway.publish(topic, b"53", qos=1)
        while b"53" not in received and time.monotonic() < deadline:
            received += await asyncio.wait_for(reader.read(4096), 5)
        assert b"53" in received  # the PUBLISH reached it, and it never answers
        writer.transport.abort()  # as kill -9 would: no DISCONNECT, no PUBACK
        await asyncio.sleep(0.5)
        async with client(settings, "ingest", session_id, clean_session=False) as again:
            [message] = await collect(again, 1, timeout=5)
    assert message.payload == b"53"


async def test_a_subscriber_arriving_mid_stream_gets_each_value_once(broker: RunningBroker) -> None:
    """A value published as a subscription arrives reaches the subscriber once: as the retained copy
    or as a live message, never both. amqtt routed a PUBLISH later, from a queue, to whoever had
    subscribed by then, so a subscriber could get the retained copy and the same value again as live:
    a retained command delivered as a fresh one."""
    settings = broker.mqtt_settings()
    topic = f"saic/midstream/vehicles/VMID{secrets.token_hex(3)}/drivetrain/soc"
    count, late_subscribers = 3000, 6
    async with contextlib.AsyncExitStack() as stack:
        gateway = await stack.enter_async_context(client(settings, "gateway"))
        subscribers = [await stack.enter_async_context(client(settings, "ingest")) for _ in range(late_subscribers)]

        async def publish_stream() -> None:
            for n in range(count):
                await gateway.publish(topic, str(n).encode(), qos=1, retain=True)

        stream = asyncio.create_task(publish_stream())
        for subscriber in subscribers:
            await asyncio.sleep(0.1)
            await subscriber.subscribe(topic, qos=1)
        await stream
        received = await asyncio.gather(*(collect(s, count, timeout=3) for s in subscribers))
        await gateway.publish(topic, b"", qos=1, retain=True)
    for messages in received:
        values = [int(m.payload) for m in messages]
        assert values, "nothing arrived"
        assert values[-1] == count - 1
        assert len(values) == len(set(values)), f"{len(values) - len(set(values))} values arrived twice"
        assert values == sorted(values), "a value arrived after a later one"
        assert [m.retain for m in messages].count(True) <= 1


async def _read_until_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the broker sends until it closes the connection; raises TimeoutError if it does not."""
    received = b""
    async with asyncio.timeout(timeout):
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(4096):
                received += chunk
    return received


async def test_a_second_connection_with_the_same_client_id_closes_the_first(broker: RunningBroker) -> None:
    """MQTT-3.1.4-2. amqtt kept the first connection open, its subscriptions gone: alive but deaf."""
    settings = broker.mqtt_settings()
    password = settings.password_for("ingest")
    assert password is not None
    client_id = f"twice-{secrets.token_hex(4)}"
    reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
    try:
        writer.write(_connect(client_id, "ingest", password))
        await writer.drain()
        assert (await reader.readexactly(4))[:1] == b"\x20"  # CONNACK
        async with client(settings, "ingest", client_id) as second:
            await second.subscribe("saic/twice/vehicles/+/drivetrain/soc", qos=1)
            await _read_until_closed(reader, 5)
            async with client(settings, "gateway") as gateway:
                await gateway.publish("saic/twice/vehicles/VTWICE1/drivetrain/soc", b"54", qos=1)
                [message] = await collect(second, 1, timeout=5)
    finally:
        writer.close()
    assert message.payload == b"54"


async def test_mqtt_5_is_answered_as_the_broker_speaks_it(broker: RunningBroker) -> None:
    """Mosquitto speaks MQTT 5; amqtt speaks 3.1.1 only and must refuse a version-5 CONNECT with return
    code 1, unacceptable protocol level, then close (MQTT-3.1.2-2)."""
    password = broker.mqtt_settings().password_for("ingest")
    assert password is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
    try:
        writer.write(_connect(f"v5-{secrets.token_hex(4)}", "ingest", password, level=5))
        await writer.drain()
        if broker.implementation == "amqtt":
            assert await _read_until_closed(reader, 5) == bytes([0x20, 0x02, 0x00, 0x01])
        else:
            connack = await asyncio.wait_for(reader.read(4096), 5)
            assert (connack[0], connack[3]) == (0x20, 0x00)  # CONNACK, reason code 0: accepted
    finally:
        writer.close()


async def test_a_repeated_subscribe_replaces_the_qos(broker: RunningBroker) -> None:
    """MQTT-3.8.4-3: amqtt kept the QoS of the first SUBSCRIBE."""
    settings = broker.mqtt_settings()
    topic = f"saic/resub/vehicles/VRESUB{secrets.token_hex(3)}/drivetrain/soc"
    async with client(settings, "ingest") as subscriber, client(settings, "gateway") as gateway:
        await subscriber.subscribe(topic, qos=0)
        await subscriber.subscribe(topic, qos=1)
        await gateway.publish(topic, b"55", qos=1)
        received = await collect(subscriber, 2, timeout=2)
    assert [(m.payload, m.qos) for m in received] == [(b"55", 1)]


async def test_overlapping_filters_deliver_a_message_once(broker: RunningBroker) -> None:
    settings = broker.mqtt_settings()
    root = f"saic/overlap/vehicles/VOVER{secrets.token_hex(3)}"
    async with client(settings, "ingest") as subscriber, client(settings, "gateway") as gateway:
        await subscriber.subscribe([(f"{root}/#", 0), (f"{root}/drivetrain/+", 1)])
        await gateway.publish(f"{root}/drivetrain/soc", b"56", qos=1)
        received = await collect(subscriber, 2, timeout=2)
    assert [(m.payload, m.qos) for m in received] == [(b"56", 1)]


async def test_the_broker_publishes_the_sys_counters_the_api_reads(broker: RunningBroker) -> None:
    from command_api.metrics import BROKER_METRICS, SYS_PREFIX

    settings = broker.mqtt_settings()
    async with client(settings, "monitor") as monitor:
        await monitor.subscribe(f"{SYS_PREFIX}#", qos=0)
        seen: dict[str, bytes] = {}
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(25):  # two sys_interval periods of 10 s, and slack
                async for message in monitor.messages:
                    seen[message.topic.value.removeprefix(SYS_PREFIX)] = bytes(message.payload)
                    if BROKER_METRICS.keys() <= seen.keys():
                        break
    assert BROKER_METRICS.keys() <= seen.keys()
    assert all(float(seen[name].split()[0]) >= 0 for name in BROKER_METRICS)


@pytest.mark.parametrize("authenticated", [False, True], ids=["connect", "publish"])
async def test_a_packet_over_max_packet_size_closes_the_connection(broker: RunningBroker, authenticated: bool) -> None:
    """Mosquitto without max_packet_size buffered a CONNECT declaring 256 MB before authentication
    (20 of them took 90 MB); amqtt read whatever length a packet declared."""
    settings = broker.mqtt_settings()
    password = settings.password_for("gateway")
    assert password is not None
    huge = bytes([0xFF, 0xFF, 0xFF, 0x7F])  # a remaining length of 268,435,455 bytes
    reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
    try:
        if authenticated:
            writer.write(_connect(f"big-{secrets.token_hex(4)}", "gateway", password))
            await writer.drain()
            assert (await reader.readexactly(4))[3] == 0  # CONNACK, accepted
            writer.write(bytes([0x30]) + huge + _string("saic/big/vehicles/VBIG1/drivetrain/soc"))
        else:
            writer.write(bytes([0x10]) + huge + _string("MQTT") + bytes([4, 0xC2, 0, 60]))
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            writer.write(bytes(64 * 1024))  # the start of the body, as a client sending it would
            await writer.drain()
        assert await _read_until_closed(reader, 5) in (b"", bytes([0x20, 0x02, 0x00, 0x01]))
    finally:
        writer.close()


async def test_the_programs_never_publish_over_max_packet_size(broker: RunningBroker) -> None:
    from common.mqtt import MAX_PACKET_SIZE, MessageTooLarge, MqttConnection, MqttOptions

    connection = MqttConnection(broker.mqtt_settings(), MqttOptions(component="gateway", client_id="too-large"))
    task = asyncio.create_task(connection.run())
    try:
        await connection.wait_connected(10)
        with pytest.raises(MessageTooLarge, match="max_packet_size"):
            await connection.publish("saic/big/vehicles/VBIG2/drivetrain/soc", bytes(MAX_PACKET_SIZE))
        await connection.publish("saic/big/vehicles/VBIG2/drivetrain/soc", b"57")  # still connected
    finally:
        await connection.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _send_and_go(port: int, data: bytes, *, reset: bool = False) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        if reset:  # close with an RST, as a crashed client or a port scanner does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(data)


@pytest.mark.parametrize("implementation", ["amqtt", "mosquitto"])
def test_garbage_and_resets_leave_no_traceback_in_the_log(implementation: str, tmp_path: Path) -> None:
    """amqtt logged tracebacks (`struct.error` in its $SYS plugin, errors in the connection callback)
    for malformed packets and connections reset mid-way."""
    from broker.mosquitto import find_mosquitto

    if implementation == "mosquitto" and find_mosquitto() is None:
        pytest.skip("Mosquitto is not installed")
    log = tmp_path / "broker.log"
    running = start_broker(implementation, tmp_path / "runtime", log=log)
    password = running.passwords["gateway"]
    try:
        garbage = [
            b"GET / HTTP/1.1\r\n\r\n",
            secrets.token_bytes(64),
            bytes([0x10, 0x40, 0x00, 0x04]) + b"MQTT",
            bytes([0x10, 0x03, 0x00, 0x04, 0x4D]),
        ]
        for data in garbage * 3:
            _send_and_go(running.port, data)
            _send_and_go(running.port, data, reset=True)
        for _ in range(100):
            _send_and_go(running.port, b"", reset=True)
        for bad in (bytes([0x82, 2, 0, 1]), bytes([0x30, 2, 0, 9]), bytes([0xF0, 0]), bytes([0x62, 2, 0, 1])):
            _send_and_go(running.port, _connect(f"bad-{secrets.token_hex(3)}", "gateway", password) + bad, reset=True)
        time.sleep(1)
        assert running.process.poll() is None
    finally:
        stop_process(running.process)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[text.index("Traceback") - 300 :][:3000]


@pytest.mark.parametrize("qos", [0, 1])
async def test_a_burst_sent_just_before_disconnecting_is_delivered_whole(broker: RunningBroker, qos: int) -> None:
    """amqtt cancelled the handling of every PUBLISH it had read but not yet started when the
    connection ended, and dropped what was queued: of 50,000 lines from `mosquitto_pub -l`, 22 (QoS 0)
    and 2,714 (QoS 1) arrived."""
    settings = broker.mqtt_settings()
    password = settings.password_for("gateway")
    assert password is not None
    topic = f"saic/burst/vehicles/VBURST{secrets.token_hex(3)}/drivetrain/soc"
    count = 2000
    async with client(settings, "ingest") as subscriber:
        await subscriber.subscribe(topic, qos=1)
        burst = _connect(f"burst-{secrets.token_hex(4)}", "gateway", password)
        for n in range(1, count + 1):
            packet_id = struct.pack("!H", n) if qos else b""
            burst += _packet(0x30 | qos << 1, _string(topic) + packet_id + str(n).encode())
        burst += bytes([0xE0, 0x00])  # DISCONNECT
        reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        writer.write(burst)
        await writer.drain()
        await _read_until_closed(reader, 10)  # CONNACK, PUBACKs, then the broker closes
        writer.close()
        received = await collect(subscriber, count, timeout=10)
    assert [int(m.payload) for m in received] == list(range(1, count + 1))


async def test_a_shared_subscription_splits_the_stream_between_its_members(broker: RunningBroker) -> None:
    """`$share/<group>/<filter>`: each message to one member of the group (ingest replicas rely on it;
    amqtt had no shared subscriptions)."""
    settings = broker.mqtt_settings()
    root = f"saic/shared/vehicles/VSHARE{secrets.token_hex(3)}"
    async with client(settings, "ingest") as first, client(settings, "ingest") as second:
        for member in (first, second):
            await member.subscribe(f"$share/ingest/{root}/drivetrain/+", qos=1)
        async with client(settings, "gateway") as gateway:
            for n in range(100):
                await gateway.publish(f"{root}/drivetrain/soc", str(n).encode(), qos=1)
            firsts, seconds = await asyncio.gather(collect(first, 100, timeout=3), collect(second, 100, timeout=3))
    values = [int(m.payload) for m in (*firsts, *seconds)]
    assert sorted(values) == list(range(100))
    assert firsts
    assert seconds
