"""Lock round-trip latency: HTTP -> API -> MQTT -> gateway -> result -> HTTP, p50 / p99.

The simulated car answers at once (SIMULATOR_COMMAND_LATENCY=0), so the figure is the backend's
own overhead, including the audit-trail writes. Real SAIC commands add seconds on top.

    .venv/bin/python -m bench.lock_latency [--requests 300] [--broker mosquitto]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
from aiohttp import web

from bench.servers import running_backend
from command_api.app import create_app
from command_api.settings import ApiSettings
from gateway.simulator import simulated_vin
from local_stack.ports import free_port

KEY = "bench-api-key-0123456789"


async def main(requests: int, implementation: str) -> None:
    async with running_backend(implementation, vehicles=10, flush_interval=0.5) as backend:
        mqtt, db = backend.mqtt, backend.db
        port = free_port()
        settings = ApiSettings.from_env(
            {"PORT": str(port), "COMMAND_API_KEY": KEY, "RATE_LIMIT_VEHICLE_COMMANDS_PER_MINUTE": "100000"}
        )
        runner = web.AppRunner(create_app(settings, mqtt, db))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url_lock = f"http://127.0.0.1:{port}/api/vehicles/{simulated_vin(1)}/commands/lock"
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
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"lock round trip over {requests} sequential requests ({implementation}): "
            f"p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms"
        )
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--broker", default="mosquitto", choices=["mosquitto", "amqtt"])
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.broker))
