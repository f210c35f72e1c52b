"""A directly connected device's identity and MQTT password.

- `device_id`: 32 hex characters derived from the device's MAC address, so a device knows its own.
- The secret: 32 random bytes, handed out once at enrolment (hex); the platform keeps it encrypted.
- The MQTT password: `<unix time>:<hex HMAC-SHA256(secret, device_id || unix time)>`. It is good in
  the hour window of its time and the one after (so a device signs a fresh one at least hourly),
  never for a time more than CLOCK_SKEW ahead, and once only: a time not newer than the newest the
  device used before is a replay.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

WINDOW = 3600
CLOCK_SKEW = 60
SECRET_BYTES = 32
MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")
PASSWORD = re.compile(r"^(\d{1,12}):([0-9a-f]{64})$")


def normalize_mac(mac: str) -> str:
    """`AA-BB-CC-DD-EE-FF`, `aabbccddeeff` and `aa:bb:...` all as `aa:bb:cc:dd:ee:ff`; ValueError otherwise."""
    text = mac.strip().lower()
    if not MAC.match(text):
        raise ValueError("mac must be six bytes in hex, e.g. 00:1a:2b:3c:4d:5e")
    digits = re.sub(r"[:-]", "", text)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def device_id_for(mac: str) -> str:
    return hashlib.sha256(f"device:{normalize_mac(mac)}".encode()).hexdigest()[:32]


def new_secret() -> str:
    return secrets.token_hex(SECRET_BYTES)


def sign(secret: str, device_id: str, timestamp: int) -> str:
    return hmac.new(bytes.fromhex(secret), f"{device_id}{timestamp}".encode(), hashlib.sha256).hexdigest()


def password(secret: str, device_id: str, timestamp: int) -> str:
    """What a device sends as its MQTT password."""
    return f"{timestamp}:{sign(secret, device_id, timestamp)}"


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str


def check(secret: str, device_id: str, presented: str, now: float, newest_used: int) -> int | Refusal:
    """The password's timestamp when it is good (the caller records it as the newest used)."""
    match = PASSWORD.match(presented)
    if match is None:
        return Refusal("the password is not <unix time>:<64 hex digits>")
    timestamp = int(match.group(1))
    if not hmac.compare_digest(sign(secret, device_id, timestamp), match.group(2)):
        return Refusal("wrong signature")
    if timestamp > now + CLOCK_SKEW:
        return Refusal("signed for a time in the future")
    if timestamp // WINDOW < int(now) // WINDOW - 1:
        return Refusal("expired: signed before the previous hour window")
    if timestamp <= newest_used:
        return Refusal("replayed: not newer than the last password this device used")
    return timestamp


def generate_key() -> str:
    """A fresh DEVICES_ENCRYPTION_KEY."""
    from cryptography.fernet import Fernet  # on demand, as in common.account_secrets

    return Fernet.generate_key().decode()
