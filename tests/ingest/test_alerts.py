"""The telemetry-gap alert: fires once when a vehicle goes quiet, says when it clears; the ingest's
metrics carry each vehicle's telemetry age."""

from __future__ import annotations

import json

from prometheus_client import generate_latest

from common import topics
from common.settings import DatabaseSettings, MqttSettings
from ingest.metrics import ingest_registry
from tests.alert_receiver import AlertReceiver
from tests.gateway.test_gateway import root, vin
from tests.helpers import client, wait_until
from tests.ingest.test_ingest import running_ingest


async def test_a_quiet_vehicle_alerts_once_and_clears(
    mqtt_settings: MqttSettings, db_settings: DatabaseSettings, alert_receiver: AlertReceiver
) -> None:
    env = {**alert_receiver.env(), "TELEMETRY_GAP_ALERT": "1"}
    key = f"telemetry-gap:{vin(5)}"

    def ours() -> list[dict[str, object]]:
        # Retained telemetry of other tests' cars reaches this ingest too, and goes quiet as well.
        return [m for m in alert_receiver.webhook if m["alert"] == key]

    async with (
        running_ingest(mqtt_settings, db_settings, env=env) as ingest,
        client(mqtt_settings, "gateway") as gw,
        client(mqtt_settings, "api") as api,
    ):
        await api.subscribe(topics.alerts_topic(mqtt_settings.topic_prefix, "ingest"), qos=1)
        await gw.publish(f"{root(5)}/drivetrain/soc", b"61.5", qos=1)
        await wait_until(lambda: len(ours()) == 1, what="the gap alert")
        # The console sees it too: the ingest keeps its open alerts retained for the API.
        while True:
            published = json.loads((await anext(api.messages)).payload)
            if key in [a["alert"] for a in published["active"]]:
                break
        for _ in range(3):  # still quiet: checked again, no second alert
            await ingest.check_telemetry_gaps()
        text = generate_latest(ingest_registry(ingest.cache, ingest.flusher)).decode()
        await gw.publish(f"{root(5)}/drivetrain/soc", b"61.0", qos=1)
        await wait_until(lambda: len(ours()) == 2, what="the all-clear")
    firing, resolved = ours()
    assert firing["state"] == "firing"
    assert f"no telemetry from {vin(5)}" in str(firing["message"])
    assert resolved["state"] == "resolved"
    assert len([m for m in alert_receiver.telegram if vin(5) in m["text"]]) == 2
    assert f'vehicle_telemetry_age_seconds{{vin="{vin(5)}"}}' in text
    assert 'ingest_messages_total{outcome="accepted"}' in text
