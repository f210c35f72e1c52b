"""Composition root of the gateway: source, MQTT connection, publisher, refresh scheduler and commands."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from datetime import UTC, datetime, timedelta

from common import topics
from common.alerts import Alerts
from common.backoff import Backoff
from common.mqtt import Received
from common.settings import MqttSettings
from common.values import TelemetryValue
from gateway.call_budget import WARN_AT, seconds_to_next_utc_day
from gateway.dispatcher import CommandDispatcher
from gateway.hub import GatewayHub
from gateway.integrations.settings import IntegrationSettings
from gateway.lateness import LatenessWindow
from gateway.metrics import GatewayMetrics
from gateway.poll_slots import PollSlots
from gateway.publisher import TelemetryPublisher
from gateway.refresh import PERIOD_NAMES, PollingPhase, RefreshMode, VehicleRefresh
from gateway.set_topics import SetTopicHandler
from gateway.settings import GatewaySettings
from gateway.simulator import SimulatedFleet
from gateway.source import VehicleInfo, VehicleMessage, VehicleSource

log = logging.getLogger(__name__)

MAX_TICK = 1.0
DEFAULT_REMOTE_TEMPERATURE = 22
LATE = 0.5
"""A poll that starts this many seconds after it was due asks for more polls in flight."""
LAG_WARNING_EVERY = 60.0
CONTACT_MARGIN = timedelta(seconds=60)
"""SAIC's stored status this much newer than the last poll's is the car's own doing, not that poll."""
FRESH_MESSAGE = 600.0
"""A car's message younger than this makes it active (an older one is history)."""


def build_source(settings: GatewaySettings, metrics: GatewayMetrics) -> VehicleSource:
    if settings.uses_saic:
        # Imported here: the SAIC client (and httpx) cost a simulated fleet 15 MiB it never uses.
        from gateway.saic.settings import SaicSettings
        from gateway.saic.source import SaicVehicleSource

        return SaicVehicleSource.from_settings(SaicSettings.from_env(), metrics)
    return SimulatedFleet(settings.simulated_vehicles, settings.simulator_seed, settings.simulator_command_latency)


class Gateway:
    """One SAIC account: its vehicles, polling, commands and `/set` topics, on a hub it may share
    with the process's other accounts (gateway/hub.py)."""

    def __init__(
        self,
        settings: GatewaySettings,
        mqtt_settings: MqttSettings,
        source: VehicleSource,
        metrics: GatewayMetrics | None = None,
        alerts: Alerts | None = None,
        integrations: IntegrationSettings | None = None,
        *,
        hub: GatewayHub | None = None,
    ) -> None:
        self.settings = settings
        self._own_hub = hub is None
        self.hub = hub or GatewayHub(
            settings,
            mqtt_settings,
            accounts=[settings.account],
            metrics=metrics,
            alerts=alerts,
            integrations=integrations,
        )
        self.mqtt = self.hub.mqtt
        self.metrics = self.hub.metrics
        self.alerts = self.hub.alerts
        self.discovery = self.hub.discovery
        self.forwarding = self.hub.forwarding
        self.prefix = mqtt_settings.topic_prefix
        self.source = source
        self.roots: dict[str, str] = {}
        self.refresh: dict[str, VehicleRefresh] = {}
        self._latest: dict[str, dict[str, TelemetryValue]] = {}
        self.inbox: asyncio.Queue[Received] = asyncio.Queue()
        self.publisher = TelemetryPublisher(self.mqtt)
        self.dispatcher = CommandDispatcher(
            self.mqtt,
            source,
            set(),
            prefix=self.prefix,
            timeout=settings.command_timeout,
            after_success=self.force_refresh,
            metrics=self.metrics,
        )
        self.set_topics = SetTopicHandler(self.mqtt, self.dispatcher, self, self.prefix)
        self.polls = 0
        self._wake = asyncio.Event()
        self._poll_slots = PollSlots(settings.poll_concurrency)
        self._due: list[tuple[float, str]] = []
        """A heap of (when due, VIN): the scheduler pops what is due instead of scanning the fleet."""
        self._lateness = LatenessWindow(time.monotonic())
        self._near_call_budget: set[str] = set()
        self._call_budget_spent: set[str] = set()
        self._poll_tasks: set[asyncio.Task[None]] = set()

    # -- MQTT input -------------------------------------------------------------------------

    def serves(self, vin: str) -> bool:
        return vin in self.roots

    async def _read_inbox(self) -> None:
        """The account's commands and `/set` topics, in order. They wait in the inbox until the
        vehicle list is known, so that none is answered "unknown vehicle" or left uncleared."""
        while True:
            message = await self.inbox.get()
            if message.topic.endswith(f"/{topics.SET_SUFFIX}"):
                await self.set_topics.on_message(message)
            else:
                await self.dispatcher.on_message(message)

    # -- settings the upstream /set topics change (set_topics.VehicleSettings) -------------

    def latest(self, vin: str, key: str) -> TelemetryValue | None:
        return self._latest.get(vin, {}).get(key)

    def set_refresh_mode(self, vin: str, mode: RefreshMode) -> None:
        self.refresh[vin].set_mode(mode)
        self._publish_refresh_settings(vin)
        self._schedule(vin)

    def set_refresh_period(self, vin: str, name: str, seconds: int) -> None:
        setattr(self.refresh[vin].periods, PERIOD_NAMES[name], float(seconds))
        self._publish_refresh_settings(vin)
        self._schedule(vin)

    def set_remote_temperature(self, vin: str, celsius: int) -> None:
        self._latest.setdefault(vin, {})[topics.CLIMATE_REMOTE_TEMPERATURE] = celsius
        self._publish(vin, {topics.CLIMATE_REMOTE_TEMPERATURE: celsius})
        if self.latest(vin, topics.CLIMATE_REMOTE_CLIMATE_STATE) == "on":
            # As upstream: a running A/C is sent the new temperature at once.
            args = {"action": "on", "temperature": celsius}
            label = "climate/remoteTemperature/set"
            self.dispatcher.spawn(self.dispatcher.execute(vin, "climate", args, label=label))

    def mark_active(self, vin: str) -> None:
        self.refresh[vin].active = True
        self.refresh[vin].set_mode(RefreshMode.FORCE)
        self._schedule(vin)

    async def force_refresh(self, vin: str) -> None:
        """After a successful command: poll the vehicle soon (a burst of commands shares the poll,
        `COMMAND_POLL_COOLDOWN`), and at the active period for a while."""
        self.refresh[vin].commanded(time.monotonic())
        self._schedule(vin)

    def _refresh_values(self, vin: str) -> dict[str, TelemetryValue]:
        state, now = self.refresh[vin], time.monotonic()
        phase = state.phase(now)
        return {
            topics.REFRESH_MODE: state.mode.value,
            topics.REFRESH_POLLING_PHASE: phase.value,
            # As upstream: the backoff after failures, the active period otherwise.
            topics.REFRESH_PERIOD_ERROR: round(
                state.interval(now) if phase is PollingPhase.ERROR else state.periods.active
            ),
            topics.REFRESH_PERIOD_CHARGING: round(state.charging_period),
        }

    def _publish_refresh_settings(self, vin: str) -> None:
        state = self.refresh[vin]
        values = self._refresh_values(vin)
        for name, attribute in PERIOD_NAMES.items():
            values[f"{topics.REFRESH_PERIOD}/{name}"] = round(getattr(state.periods, attribute))
        self._publish(vin, values)

    def _publish(self, vin: str, values: dict[str, TelemetryValue]) -> None:
        self.dispatcher.spawn(self.publisher.publish_changes(self.roots[vin], values))

    # -- activity seen without waking the car -----------------------------------------------

    async def _activity_loop(self) -> None:
        if not self.settings.activity_checks:
            return
        while True:
            await asyncio.sleep(self.settings.activity_checks)
            for vin, state in list(self.refresh.items()):
                idle = state.mode is RefreshMode.PERIODIC and not state.in_flight
                if idle and state.phase(time.monotonic()) is PollingPhase.INACTIVE:
                    await self._check_activity(vin)

    async def _check_activity(self, vin: str) -> None:
        """Ask SAIC when it last heard from an inactive car (its stored status: the car is not woken).
        Contact since the last poll means the car woke on its own, to drive or charge: poll it now."""
        try:
            heard = await self.source.heard_from(vin)
        except Exception as exc:
            log.warning(
                "the stored status of %s is unavailable: %s",
                vin,
                exc,
                exc_info=not isinstance(exc, self.source.expected_errors),
            )
            return
        last = self.latest(vin, topics.REFRESH_LAST_VEHICLE_STATE)
        if heard is None or not isinstance(last, datetime) or heard <= last + CONTACT_MARGIN:
            return  # no contact since the last poll (or no poll yet to compare with)
        log.info("%s was in contact with SAIC at %s, after its last poll: polling it as active", vin, heard)
        self._publish(vin, {topics.REFRESH_LAST_ACTIVITY: heard.replace(microsecond=0)})
        self.mark_active(vin)

    # -- the account's message list ----------------------------------------------------------

    async def _message_loop(self) -> None:
        if not self.settings.message_interval:
            return
        while True:
            if any(state.mode is not RefreshMode.OFF for state in self.refresh.values()):
                try:
                    await self.on_messages(await self.source.new_messages())
                except Exception as exc:
                    log.warning(
                        "reading the message list failed: %s",
                        exc,
                        exc_info=not isinstance(exc, self.source.expected_errors),
                    )
            await asyncio.sleep(self.settings.message_interval)

    async def on_messages(self, messages: list[VehicleMessage]) -> None:
        """Publish each car's latest message, as upstream; a recent one (a vehicle start, a charge
        started or ended, an alarm) makes the car active, as upstream counts any message as the car's
        activity: seen in the account's messages, without asking, and so waking, the car."""
        latest = {m.vin: m for m in messages if m.vin is not None and m.vin in self.roots}
        for message in messages:
            await self.alerts.note(f"message:{message.vin}", f"{message.vin}: {message.title}: {message.content}")
        for vin, message in latest.items():
            values = message.topic_values()
            age = datetime.now(UTC) - message.time
            if age.total_seconds() < FRESH_MESSAGE:
                log.info("%s: %r at %s (its message list says): polling it as active", vin, message.title, message.time)
                values[topics.REFRESH_LAST_ACTIVITY] = message.time
                self.mark_active(vin)
            await self.publisher.publish_changes(self.roots[vin], values)

    # -- polling ----------------------------------------------------------------------------

    async def poll_vehicle(self, vin: str) -> None:
        state = self.refresh[vin]
        started = time.monotonic()
        period = state.interval(started)
        state.started(started)
        try:
            values = dict(await self.source.poll(vin))
        except Exception as exc:
            state.failed(time.monotonic())
            self.metrics.polls.labels("failed").inc()
            if isinstance(exc, self.source.expected_errors):
                self._poll_slots.failed()
            log.warning(
                "polling %s failed (%s); next attempt in %.0fs",
                vin,
                exc,
                state.interval(time.monotonic()),
                exc_info=not isinstance(exc, self.source.expected_errors),
            )
            failure: dict[str, TelemetryValue] = {
                topics.AVAILABLE: "offline",
                topics.REFRESH_LAST_ERROR: datetime.now(UTC).replace(microsecond=0),
            }
            await self.publisher.publish_changes(self.roots[vin], failure | self._refresh_values(vin))
        else:
            state.succeeded(time.monotonic(), values)
            self.metrics.polls.labels("ok").inc()
            self._latest.setdefault(vin, {}).update(values)
            values[topics.AVAILABLE] = "online"
            values.update(self._refresh_values(vin))
            if state.active:
                values[topics.REFRESH_LAST_ACTIVITY] = datetime.now(UTC).replace(microsecond=0)
            await self.publisher.publish_changes(self.roots[vin], values)
            self.dispatcher.spawn(self._after_poll(vin, values))
        finally:
            self.polls += 1
            self._lateness.poll_ended(vin, time.monotonic() - started, period)
            self._count_calls(vin)
            self._schedule(vin)

    async def _after_poll(self, vin: str, values: dict[str, TelemetryValue]) -> None:
        """The integrations: ABRP and OsmAnd get the poll, the car's wallbox its SoC and range."""
        for topic, payload in self.hub.charging_stations.readings_for_the_wallbox(vin, values).items():
            await self.mqtt.publish(topic, payload, qos=1, retain=True)
        answers = await self.forwarding.after_poll(vin, values)
        await self.publisher.publish_changes(self.roots[vin], answers)

    def _count_calls(self, vin: str) -> None:
        """Alert once a car passes WARN_AT of its daily SAIC calls; its polling stops at the budget."""
        budget = self.settings.call_budget
        if not budget:
            return
        used, key = self.source.calls_today(vin), f"call-budget:{vin}"
        if used >= WARN_AT * budget and vin not in self._near_call_budget:
            self._near_call_budget.add(vin)
            message = (
                f"{vin} made {used} of its {budget} SAIC calls today: its polling stops at {budget} "
                "until 00:00 UTC (GATEWAY_DAILY_CALL_BUDGET)"
            )
            self.dispatcher.spawn(self.alerts.fire(key, message))
        elif used < WARN_AT * budget and vin in self._near_call_budget:
            self._near_call_budget.discard(vin)
            self.dispatcher.spawn(self.alerts.clear(key, f"{vin}: a new UTC day, its SAIC calls counted afresh"))
        if used >= budget:
            self._call_budget_spent.add(vin)
        else:
            self._call_budget_spent.discard(vin)
        self.metrics.near_call_budget.set(len(self._near_call_budget))
        self.metrics.call_budget_spent.set(len(self._call_budget_spent))

    def _held_for_call_budget(self, vin: str) -> bool:
        """A car whose calls are spent is not polled until the next UTC day; a force or a command's poll
        still is."""
        state, budget = self.refresh[vin], self.settings.call_budget
        if not budget or state.forced or self.source.calls_today(vin) < budget:
            return False
        state.in_flight = False
        state.hold(time.monotonic() + seconds_to_next_utc_day(datetime.now(UTC)))
        self._count_calls(vin)
        self._publish(vin, self._refresh_values(vin))
        self._schedule(vin)
        return True

    async def _poll_when_free(self, vin: str, due: float) -> None:
        if self._held_for_call_budget(vin):
            return
        queued = time.monotonic()
        async with self._poll_slots.slot():
            # Measured when the poll really starts, behind the polls in flight: the lag is the truth.
            now = time.monotonic()
            lag = now - due
            self.metrics.poll_lag.observe(lag)
            self._lateness.poll_started(lag, now - queued, LATE)
            if lag > LATE:
                self._poll_slots.started_late()
            self.metrics.poll_slots.set(self._poll_slots.limit)
            await self.poll_vehicle(vin)

    def _report_lateness(self, now: float, threshold: float) -> None:
        window, throttled = self._lateness, self.source.throttled_seconds()
        if window.worst_lag > threshold:
            demand = sum(1 / s.interval(now) for s in self.refresh.values() if s.mode is not RefreshMode.OFF)
            slots, concurrency = self._poll_slots.limit, self.settings.poll_concurrency
            log.warning(window.report(now, throttled=throttled, slots=slots, concurrency=concurrency, demand=demand))
        self._lateness = LatenessWindow(now, throttled_at_start=throttled)

    def _schedule(self, vin: str) -> None:
        """(Re)compute when `vin` is due and wake the scheduler. Entries that a later change made
        stale stay in the heap; the scheduler checks each one against the vehicle when it pops it."""
        due = self.refresh[vin].next_due(time.monotonic())
        if due is not None:
            heapq.heappush(self._due, (due, vin))
        self._wake.set()

    async def _refresh_loop(self) -> None:
        last_heartbeat = time.monotonic()
        last_lag_check = time.monotonic()
        default_active = self.settings.refresh_periods().active
        while True:
            await self.mqtt.connected.wait()
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                _, vin = heapq.heappop(self._due)
                state = self.refresh[vin]
                if state.in_flight:
                    continue  # scheduled again when this poll ends
                due = state.next_due(now)
                if due is None:
                    continue  # refreshing is off: scheduled again when its mode changes
                if due > now:
                    heapq.heappush(self._due, (due, vin))  # a stale entry: the vehicle's periods changed
                    continue
                state.in_flight = True
                task = asyncio.create_task(self._poll_when_free(vin, due))
                self._poll_tasks.add(task)
                task.add_done_callback(self._poll_tasks.discard)
            if now - last_lag_check >= LAG_WARNING_EVERY:
                self._report_lateness(now, default_active)
                last_lag_check = now
            if now - last_heartbeat >= self.settings.heartbeat_interval:
                last_heartbeat = now
                self.dispatcher.spawn(self.publisher.republish_all())
            next_wake = min(self._due[0][0] if self._due else now + MAX_TICK, now + MAX_TICK)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(next_wake - time.monotonic(), 0.01))

    # -- lifecycle --------------------------------------------------------------------------

    async def _load_vehicles(self, stop: asyncio.Event) -> list[VehicleInfo]:
        """The account's vehicles; retried with backoff, since the API may be down when we start."""
        backoff = Backoff(initial=5.0, maximum=300.0)
        while True:
            try:
                return await self.source.vehicles()
            except Exception as exc:
                delay = backoff.next_delay()
                log.error("could not list the account's vehicles (%s); retrying in %.0fs", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return []

    async def run(self, stop: asyncio.Event, vehicles: list[VehicleInfo] | None = None) -> None:
        """Serve the account until `stop`; `vehicles`: its list if already read (else it is read here)."""
        hub_stop = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            if self._own_hub:
                group.create_task(self.hub.run(hub_stop))
            self.hub.attach(self.settings.account, self, self.publisher.republish_all)
            try:
                await self._serve(stop, group, vehicles)
            finally:
                self.hub.detach(self.settings.account, self.publisher.republish_all)
                for vin in self.roots:
                    self.discovery.remove_vehicle(vin)
                hub_stop.set()
        await self.source.close()

    async def _serve(self, stop: asyncio.Event, group: asyncio.TaskGroup, known: list[VehicleInfo] | None) -> None:
        vehicles = known if known is not None else await self._load_vehicles(stop)
        for info in vehicles:
            root = topics.VehicleTopics(self.prefix, self.settings.account, info.vin).root
            self.roots[info.vin] = root
            self.refresh[info.vin] = VehicleRefresh(self.settings.refresh_periods())
            self.discovery.add_vehicle(info, root)
            # As upstream: the A/C's temperature is the gateway's to keep, 22 degC until set.
            remote: dict[str, TelemetryValue] = {
                topics.CLIMATE_REMOTE_TEMPERATURE: DEFAULT_REMOTE_TEMPERATURE,
                topics.REFRESH_LAST_ACTIVITY: datetime.now(UTC).replace(microsecond=0),  # upstream: at start
            }
            self._latest.setdefault(info.vin, {}).update(remote)
            self._publish(info.vin, info.topic_values() | remote)
            self._publish_refresh_settings(info.vin)
            self._schedule(info.vin)
        self.dispatcher.known_vins.update(self.roots)
        periods = self.settings.refresh_periods()
        log.info(
            "gateway serving %d vehicles of %s; polling profile %s: every %gs active, %gs for %gs after "
            "shutdown, then every %gs",
            len(self.roots),
            self.settings.account,
            self.settings.profile,
            periods.active,
            periods.after_shutdown,
            periods.inactive_grace,
            periods.inactive,
        )
        if self.settings.ha_discovery and self.mqtt.connected.is_set():
            self.dispatcher.spawn(self.discovery.publish(list(self.roots)))
        loops = [
            group.create_task(loop())
            for loop in (self._read_inbox, self._refresh_loop, self._message_loop, self._activity_loop)
        ]
        await stop.wait()
        log.info("stopping %s: finishing running commands", self.settings.account)
        for task in loops + list(self._poll_tasks):
            task.cancel()
        await self.dispatcher.drain()
