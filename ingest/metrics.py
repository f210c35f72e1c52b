"""The ingest's Prometheus metrics, read from the cache and the flusher when they are collected."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ingest.cache import TelemetryCache
from ingest.flusher import Flusher


class IngestCollector(Collector):
    def __init__(self, cache: TelemetryCache, flusher: Flusher) -> None:
        self.cache = cache
        self.flusher = flusher

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        messages = CounterMetricFamily("ingest_messages", "MQTT messages by outcome", labels=["outcome"])
        messages.add_metric(["accepted"], self.cache.accepted)
        messages.add_metric(["malformed"], self.cache.malformed)
        yield messages
        dead = CounterMetricFamily("ingest_dead_letters", "malformed messages set aside", labels=["outcome"])
        dead.add_metric(["written"], self.flusher.dead_letters.recorded)
        dead.add_metric(["dropped"], self.flusher.dead_letters.dropped)
        yield dead
        f = self.flusher
        flushes = CounterMetricFamily("ingest_flushes", "database flushes by outcome", labels=["outcome"])
        flushes.add_metric(["ok"], f.flushes)
        flushes.add_metric(["failed"], f.failures)
        yield flushes
        rows = CounterMetricFamily("ingest_rows_written", "rows written by table", labels=["table"])
        rows.add_metric(["vehicle_state"], f.state_rows)
        rows.add_metric(["vehicle_telemetry"], f.telemetry_rows)
        yield rows
        yield CounterMetricFamily(
            "ingest_refused_snapshots",
            "snapshots the database refused, set aside as dead letters",
            value=f.refused_snapshots,
        )
        yield GaugeMetricFamily("ingest_last_flush_seconds", "duration of the last flush", value=f.last_duration)
        yield GaugeMetricFamily(
            "ingest_held_snapshots", "vehicle snapshots held in memory for the database", value=f.held
        )
        yield GaugeMetricFamily(
            "ingest_spool_bytes", "bytes of batches spooled to disk (spool depth)", value=f.spool.bytes
        )
        yield GaugeMetricFamily("ingest_spool_batches", "batches spooled to disk", value=len(f.spool.files()))
        spool = CounterMetricFamily(
            "ingest_spool_events", "spool writes, write-backs and full events", labels=["event"]
        )
        spool.add_metric(["spooled"], f.spooled_batches)
        spool.add_metric(["replayed"], f.replayed_batches)
        spool.add_metric(["full"], f.spool.full_events)
        yield spool
        if f.wal is not None:
            wal = CounterMetricFamily("ingest_wal_events", "write-ahead log appends and drops", labels=["event"])
            wal.add_metric(["appended"], f.wal.appended)
            wal.add_metric(["segment_dropped"], f.wal.dropped_segments)
            yield wal
        yield GaugeMetricFamily(
            "ingest_pending_vehicles", "vehicles with changes not yet flushed", value=self.cache.pending
        )
        ages = GaugeMetricFamily(
            "vehicle_telemetry_age_seconds", "seconds since the vehicle's last reading arrived", labels=["vin"]
        )
        for vin, age in sorted(self.cache.reading_ages(datetime.now(UTC)).items()):
            ages.add_metric([vin], age)
        yield ages


def ingest_registry(cache: TelemetryCache, flusher: Flusher) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(IngestCollector(cache, flusher))
    return registry
