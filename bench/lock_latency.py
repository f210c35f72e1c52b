"""Lock round-trip latency: HTTP -> API -> MQTT -> gateway -> result -> HTTP, p50 / p99.

The simulated car answers at once (SIMULATOR_COMMAND_LATENCY=0), so the figure is the backend's
own overhead, including the audit-trail writes. Real SAIC commands add seconds on top. Beside it,
the same number of bare QoS 1 round trips over the same broker: the wire under the lock.

    .venv/bin/python -m bench.lock_latency [--requests 300] [--broker mosquitto]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
import aiomqtt
from aiohttp import web

from bench import run
from bench.servers import broker, running_backend
from bench.stats import percentile
from command_api.app import create_app
from command_api.settings import ApiSettings
from common import topics
from common.mqtt import MqttConnection, MqttOptions
from gateway.simulator import simulated_vin
from local_stack.ports import free_port

KEY = "bench-api-key-0123456789"


async def lock_round_trips(requests: int, implementation: str) -> list[float]:
    """Milliseconds per sequential lock, from the POST to its answer."""
    async with running_backend(implementation, vehicles=10, flush_interval=0.5) as backend:
        port = free_port()
        settings = ApiSettings.from_env(
            {"PORT": str(port), "COMMAND_API_KEY": KEY, "RATE_LIMIT_VEHICLE_COMMANDS_PER_MINUTE": "100000"}
        )
        runner = web.AppRunner(create_app(settings, backend.mqtt, backend.db))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url_lock = f"http://127.0.0.1:{port}/api/vehicles/{simulated_vin(1)}/commands/lock"
        try:
            async with aiohttp.ClientSession(headers={"X-API-Key": KEY}) as http:
                while True:  # until the ingest has recorded the vehicle
                    async with http.post(url_lock) as response:
                        if response.status == 200:
                            break
                    await asyncio.sleep(0.5)
                latencies = []
                for _ in range(requests):
                    started = time.perf_counter()
                    async with http.post(url_lock) as response:
                        body = await response.json()
                        assert body["status"] == "succeeded", body
                    latencies.append((time.perf_counter() - started) * 1000)
        finally:
            await runner.cleanup()
    return latencies


async def mqtt_echo_round_trips(requests: int, implementation: str) -> list[float]:
    """The wire under the lock: milliseconds for a QoS 1 command to reach a client that answers it
    at once with a QoS 1 result, both on the programs' own connection class (the baseline)."""
    with broker(implementation) as mqtt:
        vehicle = topics.VehicleTopics("saic", "bench", "ECHO0000000000001")
        answered: asyncio.Queue[float] = asyncio.Queue()
        responder = MqttConnection(
            mqtt,
            MqttOptions(component="gateway", client_id="echo-responder", subscriptions=[(vehicle.command("+"), 1)]),
        )
        requester = MqttConnection(
            mqtt,
            MqttOptions(component="api", client_id="echo-requester", subscriptions=[(vehicle.command_result("+"), 1)]),
        )

        async def echo(message: aiomqtt.Message) -> None:
            await responder.publish(f"{message.topic.value}/{topics.RESULT_SUFFIX}", message.payload or b"")

        async def received(_message: aiomqtt.Message) -> None:
            answered.put_nowait(time.perf_counter())

        responder.on_message, requester.on_message = echo, received
        tasks = [asyncio.create_task(c.run()) for c in (responder, requester)]
        try:
            await responder.wait_connected(10)
            await requester.wait_connected(10)
            latencies = []
            for _ in range(requests):
                started = time.perf_counter()
                await requester.publish(vehicle.command("lock"), b"{}")
                latencies.append((await asyncio.wait_for(answered.get(), 10) - started) * 1000)
        finally:
            for connection in (responder, requester):
                await connection.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return latencies


async def main(requests: int, implementation: str) -> None:
    echo = await mqtt_echo_round_trips(requests, implementation)
    latencies = await lock_round_trips(requests, implementation)
    print(
        f"lock round trip over {requests} sequential requests ({implementation}): "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
        f"max {max(latencies):.1f} ms"
    )
    print(
        f"baseline, a bare QoS 1 command and its result over the same broker: "
        f"p50 {statistics.median(echo):.2f} ms, p99 {percentile(echo, 0.99):.2f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--broker", default="mosquitto", choices=["mosquitto", "amqtt"])
    args = parser.parse_args()
    run(main(args.requests, args.broker))
