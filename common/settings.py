"""Settings from the environment (plus an optional `.env`), validated with clear messages."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from dotenv import load_dotenv
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

COMPONENTS = ("gateway", "ingest", "api", "monitor")
"""Every program that talks to the broker has its own broker user, named after it."""
INTEGRATIONS_USER = "integrations"
"""An optional broker user for Home Assistant, evcc and other clients of the upstream topic tree."""
DEVICES_USER = "devices"
"""The broker user the API's MQTT edge connects directly connected devices as, once it has checked
a device's own credentials; the ACL holds each to its `devices/<client id>/...` topics."""


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable and what was wrong."""


class EnvSettings(BaseModel):
    """Base for settings read from environment variables; fields are named by their alias."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Self:
        if environ is None:
            load_dotenv(Path.cwd() / ".env", override=False)
            environ = dict(os.environ)
        values = {k: v for k, v in environ.items() if v != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                name = ".".join(str(p) for p in error["loc"])
                got = f" (got {error['input']!r})" if error["type"] != "missing" else ""
                problems.append(f"{name}: {error['msg']}{got}")
            raise SettingsError("invalid configuration: " + "; ".join(problems)) from None


Port = Annotated[int, Field(ge=1, le=65535)]


class MqttSettings(EnvSettings):
    host: str = Field("127.0.0.1", alias="MQTT_HOST")
    port: Port = Field(1883, alias="MQTT_PORT")
    url: str | None = Field(
        None,
        alias="MQTT_URL",
        pattern=r"^(mqtts?|wss?)://[^/:]+(:\d{1,5})?(/.*)?$",
        description="an external broker, over MQTT_HOST/MQTT_PORT: mqtt://, mqtts:// (TLS), ws://, wss:// (WebSockets)",
    )
    tls_ca_file: Path | None = Field(
        None, alias="MQTT_TLS_CA_FILE", description="a CA to trust besides the system's (a self-signed broker)"
    )
    topic_prefix: str = Field("saic", alias="MQTT_TOPIC_PREFIX", pattern=r"^[^#+/$][^#+]*$")
    gateway_password: SecretStr | None = Field(None, alias="MQTT_GATEWAY_PASSWORD")
    ingest_password: SecretStr | None = Field(None, alias="MQTT_INGEST_PASSWORD")
    api_password: SecretStr | None = Field(None, alias="MQTT_API_PASSWORD")
    monitor_password: SecretStr | None = Field(None, alias="MQTT_MONITOR_PASSWORD")
    integrations_password: SecretStr | None = Field(None, alias="MQTT_INTEGRATIONS_PASSWORD")
    devices_password: SecretStr | None = Field(None, alias="MQTT_DEVICES_PASSWORD")

    def broker_credentials(self) -> dict[str, str]:
        """Every broker user and password: one per program, plus the integrations user when configured."""
        credentials = {c: self.password_for(c) for c in COMPONENTS}
        if self.integrations_password is not None:
            credentials[INTEGRATIONS_USER] = self.integrations_password.get_secret_value()
        if self.devices_password is not None:
            credentials[DEVICES_USER] = self.devices_password.get_secret_value()
        return credentials

    def endpoint(self) -> BrokerEndpoint:
        if self.url is None:
            return BrokerEndpoint(self.host, self.port, "tcp", tls=False, path=None)
        parts = urlsplit(self.url)
        tls, websockets = parts.scheme in ("mqtts", "wss"), parts.scheme.startswith("ws")
        default_port = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}[parts.scheme]
        if websockets:
            return BrokerEndpoint(
                parts.hostname or "", parts.port or default_port, "websockets", tls, parts.path or "/mqtt"
            )
        return BrokerEndpoint(parts.hostname or "", parts.port or default_port, "tcp", tls, None)

    def describe(self) -> str:
        """Where the broker is, for log lines (never a password: the URL carries none)."""
        return self.url or f"{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext | None:
        """Certificates verified, host name included; MQTT_TLS_CA_FILE is trusted besides the system's."""
        if not self.endpoint().tls:
            return None
        context = ssl.create_default_context()
        if self.tls_ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.tls_ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise SettingsError(f"MQTT_TLS_CA_FILE {self.tls_ca_file}: {exc}") from None
        return context

    def password_for(self, component: str) -> str:
        secret: SecretStr | None = getattr(self, f"{component}_password")
        if secret is None:
            raise SettingsError(
                f"MQTT_{component.upper()}_PASSWORD is not set: every program needs its own broker "
                "password (scripts/run generates them in .data/secrets.env)"
            )
        return secret.get_secret_value()


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    host: str
    port: int
    transport: Literal["tcp", "websockets"]
    tls: bool
    path: str | None
    """The WebSocket path (`/mqtt` unless the URL gives one)."""


class DatabaseSettings(EnvSettings):
    url: SecretStr = Field(alias="DATABASE_URL")
    statement_cache_size: int = Field(100, alias="DATABASE_STATEMENT_CACHE_SIZE", ge=0)
