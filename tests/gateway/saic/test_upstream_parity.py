"""The full retained tree for one car of each kind against upstream's (tests/gateway/upstream_tree.py).

Every difference from upstream 0.9.7 is either absent or listed here as intended (docs/upstream-parity.md).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from common.settings import MqttSettings
from gateway.integrations.home_assistant.entity import snake
from gateway.simulator import SimulatedFleet, simulated_vin
from tests.gateway import upstream_tree
from tests.gateway.saic.conftest import running_saic_gateway
from tests.helpers import client, collect, wait_until
from tests.saic_server import SaicTestServer

ADDITIONS = {
    "refresh/pollingPhase": "text",  # this project's polling state machine (battery-safe polling)
}
"""The project's own topics beside upstream's: its `cmd/*` commands are not retained, so not here."""


@pytest.mark.parametrize("kind", sorted(upstream_tree.KINDS))
async def test_the_retained_tree_is_upstreams(private_mqtt: MqttSettings, kind: str) -> None:
    brand, model, series, options, tank = upstream_tree.KINDS[kind]
    fleet = SimulatedFleet(1, seed=1, command_latency=0)
    vehicle = fleet.vehicle(simulated_vin(1))
    vehicle.info = dataclasses.replace(vehicle.info, brand=brand, model=model, series=series, configuration=options)
    server = SaicTestServer(fleet)
    await server.start()
    if tank is not None:
        server.tanks[vehicle.vin] = tank
    server.add_message(vehicle.vin)
    try:
        async with client(private_mqtt, "integrations") as home_assistant:
            # Subscribed first: a removal is an empty retained message, which only a live subscriber sees.
            await home_assistant.subscribe(f"homeassistant/+/{vehicle.vin}_mg/+/config", qos=1)
            async with running_saic_gateway(private_mqtt, server, GATEWAY_MESSAGE_INTERVAL="0.2") as gateway:
                await wait_until(lambda: gateway.polls >= 2 and gateway.discovery.published > 0, what="polls")
                await wait_until(lambda: server.messages[0]["readStatus"] == 1, what="the message read")
                async with client(private_mqtt, "api") as api:
                    await api.subscribe(f"saic/+/vehicles/{vehicle.vin}/#", qos=1)
                    received = await collect(api, 10_000, timeout=2)
            received += await collect(home_assistant, 10_000, timeout=1)
    finally:
        await server.stop()
    vehicle_tree = {  # retained, as upstream retains everything it publishes
        m.topic.value.split(f"/{vehicle.vin}/", 1)[1]: bytes(m.payload).decode()
        for m in received
        if m.topic.value.startswith("saic/") and m.retain
    }
    configs = {m.topic.value: bytes(m.payload) for m in received if m.topic.value.startswith("homeassistant/")}

    expected = upstream_tree.expected_topics(kind)
    missing = sorted(set(expected) - set(vehicle_tree))
    assert not missing, f"upstream publishes these and we do not: {missing}"
    allowed = expected | ADDITIONS | upstream_tree.OPTIONAL
    extra = sorted(
        k for k in vehicle_tree if k not in allowed and not k.startswith("info/configuration/") and "/result" not in k
    )
    assert not extra, f"published here, not upstream (and not listed as intended): {extra}"
    wrong = {
        key: value
        for key, value in vehicle_tree.items()
        if (fmt := allowed.get(key, "text" if key.startswith("info/configuration/") else None))
        and not upstream_tree.FORMATS[fmt].match(value)
    }
    assert not wrong, f"values not in upstream's format: {wrong}"
    assert json.loads(vehicle_tree["_internal/configuration/raw"])[0].keys() >= {"itemCode", "itemName", "itemValue"}
    for name, value in options.items():
        assert vehicle_tree[f"info/configuration/{name}"] == value

    published, removed = upstream_tree.expected_discovery(options)

    def topic(component: str, name: str) -> str:
        return f"homeassistant/{component}/{vehicle.vin}_mg/{vehicle.vin}_{snake(name)}/config"

    ours_published = {t for t, payload in configs.items() if payload}
    ours_removed = {t for t, payload in configs.items() if not payload}
    assert {topic(*e) for e in published} <= ours_published
    assert {topic(*e) for e in removed} <= ours_removed
    extras = {t.split("/")[3].removeprefix(f"{vehicle.vin}_") for t in ours_published - {topic(*e) for e in published}}
    assert extras == {"polling_phase", "elevation"}  # this project's own entities
    for t in ours_published:
        config = json.loads(configs[t])
        assert config["unique_id"] == config["object_id"] == t.split("/")[3]
        assert config["device"]["identifiers"] == [vehicle.vin]
