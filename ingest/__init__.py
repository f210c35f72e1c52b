"""The ingest: telemetry from MQTT into a per-vehicle cache, flushed to PostgreSQL every few seconds."""
