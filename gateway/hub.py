"""What one gateway process shares between the SAIC accounts it serves.

One MQTT connection (one client id, one last will on `_internal/lwt` that Home Assistant's
availability reads), one metrics registry, one alert board, Home Assistant discovery and the
integrations. Each account (gateway/app.py: Gateway) has everything else of its own: its SAIC
session, rate limit, breaker, call budget and polling, so that one account's trouble never slows
another. Messages are routed to an account's own queue by the topic's account level.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Protocol

from common import topics
from common.alerts import Alerts, AlertSettings, retain_on_the_broker
from common.metrics import MetricsPublisher
from common.mqtt import ConnectHook, MqttConnection, MqttOptions, Received, instance_id
from common.settings import MqttSettings
from gateway.integrations.forwarding import TelemetryForwarding
from gateway.integrations.home_assistant.discovery import HomeAssistantDiscovery
from gateway.integrations.openwb import ChargingStations, load_charging_stations
from gateway.integrations.settings import IntegrationSettings
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from collections.abc import Coroutine

log = logging.getLogger(__name__)


class AccountWorker(Protocol):
    """An account's side of the hub (gateway/app.py: Gateway)."""

    inbox: asyncio.Queue[Received]

    def serves(self, vin: str) -> bool: ...
    def mark_active(self, vin: str) -> None: ...


class GatewayHub:
    def __init__(
        self,
        settings: GatewaySettings,
        mqtt_settings: MqttSettings,
        *,
        accounts: list[str] | None = None,
        metrics: GatewayMetrics | None = None,
        alerts: Alerts | None = None,
        integrations: IntegrationSettings | None = None,
    ) -> None:
        """`accounts`: the accounts this process serves, when fixed (one from the environment);
        None when they come and go at run time, and the hub reads every account's topics."""
        self.settings = settings
        self.prefix = mqtt_settings.topic_prefix
        self.metrics = metrics or GatewayMetrics()
        integrations = integrations or IntegrationSettings.from_env({})
        self.forwarding = TelemetryForwarding(integrations)
        stations_file = integrations.charging_stations_file
        self.charging_stations = ChargingStations(load_charging_stations(stations_file) if stations_file else [])
        self.workers: dict[str, AccountWorker] = {}
        """Account topic level -> its worker."""
        subscriptions: list[tuple[str, int]] = []
        for account in accounts or ["+"]:
            segment = account if account == "+" else topics.account_segment(account)
            subscriptions.append((topics.command_filter(self.prefix, segment), 1))
            subscriptions += [(f, 1) for f in topics.set_filters(self.prefix, segment)]
        if settings.ha_discovery:
            subscriptions.append((topics.home_assistant_status_topic(settings.ha_discovery_prefix), 1))
        subscriptions += [(t, 1) for t in self.charging_stations.subscriptions()]
        self.mqtt = MqttConnection(
            mqtt_settings,
            MqttOptions(
                component="gateway",
                # Stable per instance (INSTANCE_ID, else host and process): a reconnect resumes
                # the same identity, and a second instance never closes the first's connection.
                client_id=f"gateway-{instance_id()}",
                subscriptions=subscriptions,
                status_topic=topics.gateway_status_topic(self.prefix),
                presence_topic=topics.instance_topic(self.prefix, "gateway", instance_id()),
                on_receive=self._route,
            ),
        )
        self.discovery = HomeAssistantDiscovery(
            self.mqtt,
            discovery_prefix=settings.ha_discovery_prefix,
            availability_topic=topics.gateway_status_topic(self.prefix),
        )
        if settings.ha_discovery:
            self.mqtt.options.on_connect.append(self.discovery.publish_all)
        self.metrics_publisher = MetricsPublisher(
            self.mqtt, self.metrics.registry, topics.metrics_topic(self.prefix, "gateway")
        )
        self.alerts = alerts or Alerts("gateway", AlertSettings.from_env({}))
        retain_on_the_broker(self.alerts, self.mqtt, topics.alerts_topic(self.prefix, "gateway"))
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, account: str, worker: AccountWorker, on_connect: ConnectHook) -> None:
        self.workers[topics.account_segment(account)] = worker
        self.mqtt.options.on_connect.append(on_connect)
        if self.mqtt.connected.is_set():
            self._spawn(on_connect())

    def detach(self, account: str, on_connect: ConnectHook) -> None:
        self.workers.pop(topics.account_segment(account), None)
        with contextlib.suppress(ValueError):
            self.mqtt.options.on_connect.remove(on_connect)

    def _route(self, topic: str, payload: bytes, retain: bool) -> None:
        """Each message as it is read, before its PUBACK: an account's go to its inbox, in order."""
        if self.charging_stations.owns(topic):
            vin = self.charging_stations.charging_started(topic, payload.decode(errors="replace").strip())
            for worker in list(self.workers.values()):
                if vin is not None and worker.serves(vin):
                    worker.mark_active(vin)
            return
        if self.settings.ha_discovery and topic == self.discovery.status_topic:
            self._spawn(self.discovery.on_status(payload))
            return
        parsed = topics.parse_vehicle_topic(self.prefix, topic)
        owner = self.workers.get(parsed.account) if parsed is not None else None
        if owner is not None:
            owner.inbox.put_nowait(Received(topic, payload, retain))
        # Another replica's account, or one not started yet: not this process's to answer.

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, stop: asyncio.Event) -> None:
        """The connection and the metrics, until `stop`; then `offline` and disconnect."""
        async with asyncio.TaskGroup() as group:
            connection = group.create_task(self.mqtt.run())
            metrics = group.create_task(self.metrics_publisher.run())
            await stop.wait()
            metrics.cancel()
            await self.forwarding.close()
            await self.mqtt.close()
            connection.cancel()
