"""Mosquitto's password file format (`user:$7$<iterations>$<salt>$<hash>`, PBKDF2-SHA512).

Generated at start from the settings, read natively by Mosquitto and verified here for amqtt.
101 iterations is Mosquitto's own default: the file never leaves the container and a verify
costs ~0.1 ms, so authentication never stalls the amqtt event loop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

ITERATIONS = 101


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    parts = encoded.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return hmac.compare_digest(digest, expected)


def write_password_file(path: Path, credentials: dict[str, str]) -> None:
    lines = [f"{user}:{hash_password(pw)}\n" for user, pw in sorted(credentials.items())]
    path.touch(mode=0o600)
    path.write_text("".join(lines), encoding="utf-8")


def read_password_file(path: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            user, _, encoded = line.partition(":")
            entries[user] = encoded
    return entries
