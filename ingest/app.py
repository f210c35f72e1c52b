"""Composition root of the ingest: MQTT subscription -> cache -> scheduled flush -> sink
(PostgreSQL or Supabase REST)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import aiomqtt
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from common import topics
from common.alerts import Alerts, AlertSettings
from common.backoff import Backoff
from common.metrics import MetricsPublisher
from common.mqtt import MqttConnection, MqttOptions
from common.settings import DatabaseSettings, MqttSettings, SettingsError
from ingest.cache import MalformedMessage, TelemetryCache
from ingest.dead_letters import DeadLetters
from ingest.flusher import Flusher
from ingest.metrics import ingest_registry
from ingest.settings import IngestSettings, SupabaseSettings
from ingest.sink import Sink, SinkError
from ingest.spool import Spool

log = logging.getLogger(__name__)

FINAL_FLUSH_TIMEOUT = 5.0
SUMMARY_EVERY = 60.0
GAP_CHECK_EVERY = 30.0


def subscriptions(prefix: str, shared_group: str | None = None) -> list[tuple[str, int]]:
    """The seed's seven categories (for every account), plus what dates and names a reading.

    With a shared group, replicas subscribed as `$share/<group>/...` split the messages between them.
    """
    suffixes = [f"{c}/#" for c in topics.INGESTED_CATEGORIES]
    suffixes += ["info/#", topics.REFRESH_LAST_VEHICLE_STATE, topics.AVAILABLE]
    share = f"$share/{shared_group}/" if shared_group else ""
    return [(share + topics.vehicles_filter(prefix, s), 1) for s in suffixes]


def choose_sink(settings: IngestSettings, environ: dict[str, str]) -> str:
    """PostgreSQL when DATABASE_URL is set (one transaction per flush, the faster path), else Supabase REST."""
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
    from ingest.postgres_sink import PostgresSink

    return await PostgresSink.connect(DatabaseSettings.from_env(environ))


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
        self.alerts = Alerts("ingest", alert_settings or AlertSettings.from_env({}))
        self.mqtt = MqttConnection(
            mqtt_settings,
            MqttOptions(
                component="ingest",
                client_id=settings.client_id,
                subscriptions=subscriptions(mqtt_settings.topic_prefix, settings.shared_group),
                status_topic=topics.component_status_topic(mqtt_settings.topic_prefix, "ingest"),
                clean_session=False,  # the broker keeps QoS 1 messages for us while we restart
            ),
            self.on_message,
        )
        self.dead_letters = DeadLetters()
        self.flusher = Flusher(self.cache, sink, self.spool, self.dead_letters)
        self.metrics = MetricsPublisher(
            self.mqtt,
            ingest_registry(self.cache, self.flusher),
            topics.metrics_topic(mqtt_settings.topic_prefix, "ingest"),
        )

    async def on_message(self, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        now = datetime.now(UTC)
        try:
            self.cache.add(message.topic.value, payload, now)
        except MalformedMessage as exc:
            self.dead_letters.add(now, message.topic.value, payload, str(exc))
            count = self.cache.malformed
            if count <= 10 or count % 1000 == 0:
                log.warning("malformed message #%d on %s: %s", count, message.topic.value[:200], exc)

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

    async def run(self, stop: asyncio.Event) -> None:
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
            self._log_summary()
