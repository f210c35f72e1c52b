"""Per-checkout secrets for the embedded default, generated once into a git-ignored file."""

from __future__ import annotations

import secrets
from pathlib import Path

from cryptography.fernet import Fernet
from dotenv import dotenv_values

GENERATED = (
    "MQTT_GATEWAY_PASSWORD",
    "MQTT_INGEST_PASSWORD",
    "MQTT_API_PASSWORD",
    "MQTT_MONITOR_PASSWORD",
    "MQTT_INTEGRATIONS_PASSWORD",
    "MQTT_DEVICES_PASSWORD",
    "DEVICES_ENCRYPTION_KEY",
    "LOCAL_POSTGRES_PASSWORD",
    "COMMAND_API_KEY",
)

FERNET_KEYS = ("DEVICES_ENCRYPTION_KEY",)


def load_or_create(path: Path) -> dict[str, str]:
    """The secrets in `path`, adding any that are missing (existing values are never changed)."""
    existing = {k: v for k, v in dotenv_values(path).items() if v} if path.exists() else {}
    missing = [name for name in GENERATED if name not in existing]
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        with path.open("a", encoding="utf-8") as out:
            for name in missing:
                existing[name] = Fernet.generate_key().decode() if name in FERNET_KEYS else secrets.token_urlsafe(24)
                out.write(f"{name}={existing[name]}\n")
    return existing


def write_private(path: Path, text: str) -> None:
    """`text` in a file only its owner can read (0600), whatever mode an earlier run left it with."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")
