from __future__ import annotations

from pydantic import Field

from common.settings import EnvSettings


class IngestSettings(EnvSettings):
    flush_interval: float = Field(5.0, alias="INGEST_FLUSH_INTERVAL", gt=0, le=3600)
    client_id: str = Field("ingest", alias="INGEST_CLIENT_ID", min_length=1)
    telemetry_gap_alert: float = Field(
        300.0, alias="TELEMETRY_GAP_ALERT", gt=0, description="alert when a vehicle sends nothing for this long (s)"
    )
    log_level: str = Field("INFO", alias="LOG_LEVEL")
