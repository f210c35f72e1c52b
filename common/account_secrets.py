"""SAIC passwords (and devices' secrets) at rest: Fernet (AES-128-CBC with HMAC-SHA256, from the `cryptography` package)
under ACCOUNTS_ENCRYPTION_KEY, a comma-separated list of keys: the first encrypts, any decrypts, so
a key is rotated by putting the new one first and re-saving the accounts.

`cryptography` is imported when a key first encrypts or opens something, not when it is configured:
a gateway with no stored accounts (one account from its environment, or the simulated fleet) and
an API with devices enabled but none connected never load it, 8 to 10 MiB of each one's memory."""

from __future__ import annotations

import base64
import binascii
from functools import cached_property
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr, field_validator

from common.settings import EnvSettings

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

MAKE_A_KEY = "make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


class CipherError(ValueError):
    """A stored password that none of the keys can open (a wrong or rotated-out key)."""


def _is_fernet_key(key: str) -> bool:
    """What Fernet's constructor checks, without importing `cryptography` for it."""
    try:
        return len(base64.urlsafe_b64decode(key)) == 32
    except (binascii.Error, ValueError):  # ValueError: characters outside ASCII
        return False


def _fernet_keys(value: SecretStr) -> SecretStr:
    if not all(_is_fernet_key(key.strip()) for key in value.get_secret_value().split(",")):
        raise ValueError(f"each key must be 32 url-safe base64-encoded bytes ({MAKE_A_KEY})")
    return value


class AccountCipherSettings(EnvSettings):
    key: SecretStr = Field(alias="ACCOUNTS_ENCRYPTION_KEY", description="Fernet keys, comma-separated")

    _keys = field_validator("key")(_fernet_keys)


class DeviceCipherSettings(EnvSettings):
    """Directly connected devices' secrets (common/device_credentials.py), under a key of their own."""

    key: SecretStr = Field(alias="DEVICES_ENCRYPTION_KEY", description="Fernet keys, comma-separated")

    _keys = field_validator("key")(_fernet_keys)


class AccountCipher:
    def __init__(self, settings: AccountCipherSettings | DeviceCipherSettings) -> None:
        self._keys = [key.strip() for key in settings.key.get_secret_value().split(",")]  # validated by the settings

    @cached_property
    def _fernet(self) -> MultiFernet:
        from cryptography.fernet import Fernet, MultiFernet

        return MultiFernet([Fernet(key) for key in self._keys])

    def encrypt(self, password: str) -> str:
        return self._fernet.encrypt(password.encode()).decode()

    def decrypt(self, token: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise CipherError("the stored password opens with none of ACCOUNTS_ENCRYPTION_KEY's keys") from None
