"""Broker throughput at QoS 0 and QoS 1, amqtt beside Mosquitto in the same run.

One aiomqtt publisher (the programs' own client) sends N 100-byte messages flat out to
`saic/bench/vehicles/V<i%10>/drivetrain/soc`; one subscriber on the same filter counts them.
Rate = messages received / (last receive - first publish).

    .venv/bin/python -m bench.broker_throughput [--messages 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

import aiomqtt

from bench.servers import broker
from common.settings import MqttSettings

PAYLOAD = b"x" * 100
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


async def main(count: int) -> None:
    results: dict[tuple[str, int], float] = {}
    for implementation in ("mosquitto", "amqtt"):
        with broker(implementation) as settings:
            for qos in (0, 1):
                rate, delivered = await measure(settings, qos, count)
                results[implementation, qos] = rate
                print(f"{implementation:9s} QoS {qos}: {rate:9.0f} msg/s ({delivered}/{count} delivered)")
    for qos in (0, 1):
        ratio = results["amqtt", qos] / results["mosquitto", qos]
        print(f"QoS {qos}: amqtt / Mosquitto = {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().messages))
