from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from common.settings import EnvSettings, Port


class ApiSettings(EnvSettings):
    host: str = Field("127.0.0.1", alias="API_HOST", description="0.0.0.0 in the container")
    port: Port = Field(8080, alias="PORT")
    profile: Literal["development", "production"] = Field(
        "development", alias="API_PROFILE", description="production refuses to start without authentication"
    )
    api_key: SecretStr | None = Field(
        None, alias="COMMAND_API_KEY", min_length=16, description="one plain key (named `default`), for development"
    )
    api_key_hashes: str | None = Field(
        None,
        alias="COMMAND_API_KEYS",
        description="comma-separated `name:sha256hex` entries: services and operators, stored hashed",
    )
    jwt_secret: SecretStr | None = Field(None, alias="SUPABASE_JWT_SECRET", min_length=16)
    jwks_url: str | None = Field(None, alias="SUPABASE_JWKS_URL", pattern=r"^https?://")
    jwt_audience: str = Field("authenticated", alias="SUPABASE_JWT_AUDIENCE")
    cors_origins: str = Field("", alias="CORS_ALLOWED_ORIGINS", description="comma-separated origins")
    command_timeout: float = Field(
        30.0, alias="COMMAND_TIMEOUT", gt=0, le=300, description="a command expires this long after it is sent"
    )
    command_wait: float = Field(
        10.0, alias="COMMAND_WAIT", ge=0, le=300, description="how long a POST waits for the outcome before 202"
    )
    account_verify_wait: float = Field(
        30.0,
        alias="ACCOUNT_VERIFY_WAIT",
        ge=0,
        le=300,
        description="how long adding an account waits for its first login before 202",
    )
    accounts_key: SecretStr | None = Field(
        None, alias="ACCOUNTS_ENCRYPTION_KEY", description="Fernet keys: without them, no accounts through the API"
    )
    devices_key: SecretStr | None = Field(
        None, alias="DEVICES_ENCRYPTION_KEY", description="Fernet keys: without them, no directly connected devices"
    )
    firmware_key: str | None = Field(
        None,
        alias="FIRMWARE_SIGNING_PUBLIC_KEY",
        description="the vendor's ECDSA P-256 public key (PEM): firmware is accepted only with its signature",
    )
    rollout_tick: float = Field(5.0, alias="ROLLOUT_TICK", gt=0, le=3600, description="how often rollouts advance (s)")
    rollout_device_timeout: float = Field(
        3600.0,
        alias="ROLLOUT_DEVICE_TIMEOUT",
        gt=0,
        description="a triggered device that has not answered in this long counts as failed (s)",
    )
    diag_wait: float = Field(10.0, alias="DIAG_WAIT", gt=0, le=30, description="how long a diagnostic request waits")
    user_requests_per_minute: int = Field(600, alias="RATE_LIMIT_REQUESTS_PER_MINUTE", gt=0)
    vehicle_commands_per_minute: int = Field(10, alias="RATE_LIMIT_VEHICLE_COMMANDS_PER_MINUTE", gt=0)
    telemetry_gap_alert: float = Field(
        300.0, alias="TELEMETRY_GAP_ALERT", gt=0, description="the console marks a car red after this long silent (s)"
    )
    console_tile_url: str | None = Field(
        None,
        alias="CONSOLE_TILE_URL",
        pattern=r"^https?://[^\s]*\{z\}[^\s]*\{x\}[^\s]*\{y\}",
        description="map tiles for the console, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png (none: no tiles)",
    )
    console_tile_attribution: str = Field(
        "© OpenStreetMap contributors", alias="CONSOLE_TILE_ATTRIBUTION", max_length=200
    )
    log_level: str = Field("INFO", alias="LOG_LEVEL")

    @field_validator("api_key_hashes")
    @classmethod
    def _hashed_keys(cls, value: str | None) -> str | None:
        for entry in (value or "").split(","):
            name, _, digest = entry.strip().partition(":")
            if entry.strip() and (not name or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest)):
                raise ValueError(f"{entry.strip()!r} is not `name:<sha256 hex of the key>`")
        return value

    @property
    def allowed_origins(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())
