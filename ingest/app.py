"""Composition root of the ingest: MQTT subscription -> cache -> scheduled flush -> sink
(PostgreSQL or Supabase REST)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from common import topics
from common.alerts import Alerts, AlertSettings, retain_on_the_broker
from common.backoff import Backoff
from common.metrics import MetricsPublisher
from common.mqtt import MqttConnection, MqttOptions, instance_id
from common.settings import DatabaseSettings, MqttSettings, SettingsError
from ingest.cache import MalformedMessage, TelemetryCache
from ingest.dead_letters import DeadLetters
from ingest.devices import DeviceInbox
from ingest.flusher import Flusher
from ingest.metrics import ingest_registry
from ingest.settings import IngestSettings, SupabaseSettings
from ingest.sink import Sink, SinkError, stored_states
from ingest.spool import Spool
from ingest.wal import WriteAheadLog

log = logging.getLogger(__name__)

FINAL_FLUSH_TIMEOUT = 5.0
SUMMARY_EVERY = 60.0
GAP_CHECK_EVERY = 30.0
WAL_SYNC_EVERY = 1.0
EARLY_FLUSH_READINGS = 1_000
DEVICE_TOPICS = f"{topics.DEVICES}/"
"""Flush before the schedule once this many completed readings wait (a burst, a replay, a backlog)."""


def subscriptions(prefix: str, shared_group: str | None = None) -> list[tuple[str, int]]:
    """The seed's seven categories (for every account), plus what dates and names a reading.

    With a shared group, replicas subscribed as `$share/<group>/...` split the messages between them.
    """
    suffixes = [f"{c}/#" for c in topics.INGESTED_CATEGORIES]
    suffixes += ["info/#", topics.REFRESH_LAST_VEHICLE_STATE, topics.AVAILABLE]
    share = f"$share/{shared_group}/" if shared_group else ""
    vehicles = [(share + topics.vehicles_filter(prefix, s), 1) for s in suffixes]
    device_reports = (
        topics.DEVICE_TELEMETRY,
        topics.DEVICE_STATUS,
        topics.DEVICE_CONFIG_STATUS,
        topics.DEVICE_OTA_STATUS,
    )
    return vehicles + [(share + topics.device_filter(key), 1) for key in device_reports]


def choose_sink(settings: IngestSettings, environ: dict[str, str]) -> str:
    """PostgreSQL when DATABASE_URL is set (the faster path), else Supabase REST."""
    if settings.sink != "auto":
        return settings.sink
    if environ.get("DATABASE_URL"):
        return "postgres"
    if (environ.get("SUPABASE_URL") or environ.get("NEXT_PUBLIC_SUPABASE_URL")) and environ.get(
        "SUPABASE_SERVICE_ROLE_KEY"
    ):
        return "supabase"
    raise SettingsError(
        "no database configured: set DATABASE_URL (PostgreSQL, Supabase's own Postgres included) or "
        "SUPABASE_URL (or NEXT_PUBLIC_SUPABASE_URL) with SUPABASE_SERVICE_ROLE_KEY (Supabase REST)"
    )


async def _create_sink(kind: str, environ: dict[str, str]) -> Sink:
    if kind == "supabase":
        from ingest.supabase_sink import SupabaseSink

        return await SupabaseSink.connect(SupabaseSettings.from_env(environ))
    from ingest.periods import PeriodSettings
    from ingest.postgres_sink import PostgresSink

    return await PostgresSink.connect(DatabaseSettings.from_env(environ), PeriodSettings.from_env(environ))


async def open_sink(kind: str, environ: dict[str, str], stop: asyncio.Event) -> Sink | None:
    """Wait with backoff until the sink takes writes (the database may start after us); None if stopped."""
    backoff = Backoff(initial=0.5, maximum=15)
    sink: Sink | None = None
    while not stop.is_set():
        try:
            if sink is None:
                sink = await _create_sink(kind, environ)
            await sink.ready()
            log.info("writing to %s", sink.name)
            return sink
        except SinkError as exc:
            delay = backoff.next_delay()
            log.warning("%s sink not ready (%s); retrying in %.1fs", kind, exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    if sink is not None:
        await sink.close()
    return None


class Ingest:
    def __init__(
        self,
        settings: IngestSettings,
        mqtt_settings: MqttSettings,
        sink: Sink,
        alert_settings: AlertSettings | None = None,
    ) -> None:
        self.settings = settings
        self.cache = TelemetryCache(mqtt_settings.topic_prefix)
        self.spool = Spool(settings.spool_dir, settings.spool_max_bytes)
        self.wal = WriteAheadLog(settings.write_ahead_log_dir, settings.spool_max_bytes)
        self.alerts = Alerts("ingest", alert_settings or AlertSettings.from_env({}))
        self.mqtt = MqttConnection(
            mqtt_settings,
            MqttOptions(
                component="ingest",
                client_id=settings.client_id,
                subscriptions=subscriptions(mqtt_settings.topic_prefix, settings.shared_group),
                status_topic=topics.component_status_topic(mqtt_settings.topic_prefix, "ingest"),
                presence_topic=topics.instance_topic(mqtt_settings.topic_prefix, "ingest", instance_id()),
                clean_session=False,  # the broker keeps QoS 1 messages for us while we restart
                on_receive=self.receive,
                before_send=self.wal.write_pending,  # before any PUBACK leaves
            ),
        )
        retain_on_the_broker(self.alerts, self.mqtt, topics.alerts_topic(mqtt_settings.topic_prefix, "ingest"))
        self.dead_letters = DeadLetters()
        self._early_flush: asyncio.Task[None] | None = None
        self._registering: asyncio.Task[None] | None = None
        self.devices = DeviceInbox()
        self.flusher = Flusher(self.cache, sink, self.spool, self.dead_letters, self.wal, self.devices)
        self.metrics = MetricsPublisher(
            self.mqtt,
            ingest_registry(self.cache, self.flusher),
            topics.metrics_topic(mqtt_settings.topic_prefix, "ingest"),
        )

    def receive(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """One message, before its PUBACK: logged ahead, then merged into the cache."""
        now = datetime.now(UTC)
        self.wal.append(now, topic, payload)
        self._merge(topic, payload, now, retained)
        if self.cache.completed_readings >= EARLY_FLUSH_READINGS and self._early_flush is None:
            self._early_flush = asyncio.get_running_loop().create_task(self._flush_early())
        if self.cache.has_new_vehicles and self._registering is None and not self.flusher.failing:
            self._registering = asyncio.get_running_loop().create_task(self._register_new_vehicles())

    async def _flush_early(self) -> None:
        try:
            await self.flusher.flush()
        finally:
            self._early_flush = None

    async def _register_new_vehicles(self) -> None:
        """The API routes a command by the vehicle's row: a car first seen gets it now, not at the
        next flush (5 s by default), which writes it anyway should this fail."""
        try:
            while rows := self.cache.take_new_vehicles():
                await self.flusher.sink.write_vehicles(rows)
        except SinkError as exc:
            log.warning("could not register new vehicles ahead of the flush (%s)", exc)
        finally:
            self._registering = None

    def _merge(self, topic: str, payload: bytes, received_at: datetime, retained: bool = False) -> None:
        try:
            if topic.startswith(DEVICE_TOPICS):
                self.devices.add(topic, payload, received_at)
            else:
                self.cache.add(topic, payload, received_at, retained=retained)
        except MalformedMessage as exc:
            self.dead_letters.add(received_at, topic, payload, str(exc))
            count = self.cache.malformed + self.devices.malformed
            if count <= 10 or count % 1000 == 0:
                log.warning("malformed message #%d on %s: %s", count, topic[:200], exc)

    def replay_write_ahead_log(self) -> int:
        """Messages acknowledged by an earlier run that crashed before storing them."""
        replayed = 0
        for received_at, topic, payload in self.wal.replay():
            self._merge(topic, payload, received_at)
            replayed += 1
        if replayed:
            log.warning("replayed %d messages from the write-ahead log of an earlier run", replayed)
        return replayed

    async def _sync_wal(self) -> None:
        await asyncio.to_thread(self.wal.sync)  # an fsync can take milliseconds: not on the loop

    def _log_summary(self) -> None:
        f = self.flusher
        log.info(
            "Ingest: %d messages, %d malformed, %d vehicles; %d flushes (%d failed), %d state rows, "
            "%d telemetry rows, last flush %.1f ms",
            self.cache.accepted,
            self.cache.malformed,
            len(self.cache),
            f.flushes,
            f.failures,
            f.state_rows,
            f.telemetry_rows,
            f.last_duration * 1000,
        )

    async def check_telemetry_gaps(self) -> None:
        """Alert once per vehicle that has sent nothing for `telemetry_gap_alert` s; clear when it resumes."""
        limit = self.settings.telemetry_gap_alert
        for vin, age in self.cache.reading_ages(datetime.now(UTC)).items():
            if age > limit:
                await self.alerts.fire(f"telemetry-gap:{vin}", f"no telemetry from {vin} for {age:.0f}s")
            else:
                await self.alerts.clear(f"telemetry-gap:{vin}", f"telemetry from {vin} resumed")

    async def load_stored_states(self) -> None:
        """Seed the cache with what is stored, so that the broker's retained re-sends add no phantom readings."""
        try:
            async for page in stored_states(self.flusher.sink):
                for row in page:
                    self.cache.seed(row["vin"], row["account"], row["state"] or {})
        except SinkError as exc:
            log.warning("could not read the stored states (%s): retained values count as new readings", exc)
            return
        log.info("starting from the stored state of %d vehicles", len(self.cache))

    async def run(self, stop: asyncio.Event) -> None:
        await self.load_stored_states()
        self.replay_write_ahead_log()
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_job(
            self.flusher.flush,
            "interval",
            seconds=self.settings.flush_interval,
            max_instances=1,
            coalesce=True,
            id="flush",
        )
        scheduler.add_job(self._log_summary, "interval", seconds=SUMMARY_EVERY, id="summary")
        scheduler.add_job(self._sync_wal, "interval", seconds=WAL_SYNC_EVERY, max_instances=1, id="wal-sync")
        scheduler.add_job(
            self.check_telemetry_gaps,
            "interval",
            seconds=min(GAP_CHECK_EVERY, self.settings.telemetry_gap_alert / 2),
            max_instances=1,
            id="telemetry-gaps",
        )
        scheduler.start()
        connection = asyncio.create_task(self.mqtt.run())
        metrics = asyncio.create_task(self.metrics.run())
        try:
            await stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            metrics.cancel()
            await self.mqtt.close()
            connection.cancel()
            await asyncio.gather(connection, return_exceptions=True)
            try:
                await asyncio.wait_for(self.flusher.flush(), FINAL_FLUSH_TIMEOUT)
                log.info("final flush done: the cache is written")
            except TimeoutError:
                log.error("final flush did not finish within %.0fs", FINAL_FLUSH_TIMEOUT)
            self.wal.close()
            self._log_summary()
