from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr

from common.settings import EnvSettings


def _default_spool_dir() -> Path:
    return Path(os.environ.get("RUNTIME_DIR") or tempfile.gettempdir()) / "ingest-spool"


class IngestSettings(EnvSettings):
    sink: Literal["auto", "postgres", "supabase"] = Field(
        "auto",
        alias="INGEST_SINK",
        description="auto: PostgreSQL when DATABASE_URL is set, else Supabase REST when its URL and key are",
    )
    flush_interval: float = Field(5.0, alias="INGEST_FLUSH_INTERVAL", gt=0, le=3600)
    client_id: str = Field("ingest", alias="INGEST_CLIENT_ID", min_length=1)
    shared_group: str | None = Field(
        None,
        alias="INGEST_SHARED_SUBSCRIPTION",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="subscribe as $share/<group>/... so that replicas split the stream",
    )
    spool_dir: Path = Field(default_factory=_default_spool_dir, alias="INGEST_SPOOL_DIR")
    wal_dir: Path | None = Field(
        None, alias="INGEST_WAL_DIR", description="the write-ahead log; default <INGEST_SPOOL_DIR>-wal"
    )
    spool_max_bytes: int = Field(256 * 2**20, alias="INGEST_SPOOL_MAX_BYTES", ge=0)
    telemetry_gap_alert: float = Field(
        300.0, alias="TELEMETRY_GAP_ALERT", gt=0, description="alert when a vehicle sends nothing for this long (s)"
    )
    log_level: str = Field("INFO", alias="LOG_LEVEL")

    @property
    def write_ahead_log_dir(self) -> Path:
        return self.wal_dir or self.spool_dir.parent / f"{self.spool_dir.name}-wal"


class SupabaseSettings(EnvSettings):
    url: str = Field(
        validation_alias=AliasChoices("SUPABASE_URL", "NEXT_PUBLIC_SUPABASE_URL"),
        pattern=r"^https?://",
        description="the project URL (the seed's NEXT_PUBLIC_SUPABASE_URL works too)",
    )
    service_role_key: SecretStr = Field(alias="SUPABASE_SERVICE_ROLE_KEY", min_length=1)
    timeout: float = Field(10.0, alias="SUPABASE_TIMEOUT", gt=0, le=120)
