"""The floor under the command path: a bare aiohttp handler that sends each request as a QoS 1
command over MQTT and answers with its result, and a bare responder that answers every command at
once. No database, no audit, no authentication, no car: only the hops every command takes (HTTP,
the programs' own MQTT connection and event loop, Mosquitto). `bench.api` drives it with the same
clients as the API, each role in a process of its own, as the baseline beside the commands.

    .venv/bin/python -m bench.bare_command server PORT   # MQTT_PORT and MQTT_API_PASSWORD set
    .venv/bin/python -m bench.bare_command responder     # MQTT_PORT and MQTT_GATEWAY_PASSWORD set
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from aiohttp import web

from common.lifecycle import event_loop_factory
from common.mqtt import MqttConnection, MqttOptions, ReceiveHook
from common.settings import MqttSettings

ROOT = "saic/bench/vehicles"


def _connection(component: str, subscription: str, on_receive: ReceiveHook) -> MqttConnection:
    options = MqttOptions(
        component=component,
        client_id=f"bare-{component}-{uuid.uuid4().hex[:8]}",
        subscriptions=[(subscription, 1)],
        on_receive=on_receive,
    )
    return MqttConnection(MqttSettings.from_env(), options)


async def responder() -> None:
    """Answer each command at once with `succeeded` on its result topic."""
    pending: set[asyncio.Task[None]] = set()

    def answer(topic: str, payload: bytes, _retained: bool) -> None:
        result = json.dumps({"id": json.loads(payload)["id"], "status": "succeeded"})
        task = asyncio.create_task(mqtt.publish(f"{topic}/result", result, qos=1))
        pending.add(task)
        task.add_done_callback(pending.discard)

    mqtt = _connection("gateway", f"{ROOT}/+/cmd/+", answer)
    await mqtt.run()


async def server(port: int) -> None:
    """POST /api/vehicles/{vin}/commands/{command}: the command's result as JSON."""
    waiting: dict[str, asyncio.Future[bytes]] = {}

    def result(_topic: str, payload: bytes, _retained: bool) -> None:
        future = waiting.pop(json.loads(payload)["id"], None)
        if future is not None and not future.done():
            future.set_result(payload)

    mqtt = _connection("api", f"{ROOT}/+/cmd/+/result", result)
    connection = asyncio.create_task(mqtt.run())

    async def command(request: web.Request) -> web.Response:
        command_id = str(uuid.uuid4())
        future = waiting[command_id] = asyncio.get_running_loop().create_future()
        topic = f"{ROOT}/{request.match_info['vin']}/cmd/{request.match_info['command']}"
        await mqtt.publish(topic, json.dumps({"id": command_id}), qos=1)
        return web.Response(body=await future, content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/vehicles/{vin}/commands/{command}", command)
    await mqtt.wait_connected(10)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await connection


if __name__ == "__main__":
    role = sys.argv[1]
    main = server(int(sys.argv[2])) if role == "server" else responder()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:  # the programs' own event loop
        runner.run(main)
