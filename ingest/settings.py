from __future__ import annotations

from pydantic import Field

from common.settings import EnvSettings


class IngestSettings(EnvSettings):
    flush_interval: float = Field(5.0, alias="INGEST_FLUSH_INTERVAL", gt=0, le=3600)
    client_id: str = Field("ingest", alias="INGEST_CLIENT_ID", min_length=1)
    log_level: str = Field("INFO", alias="LOG_LEVEL")
