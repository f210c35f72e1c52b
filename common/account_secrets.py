"""SAIC passwords (and devices' secrets) at rest: Fernet (AES-128-CBC with HMAC-SHA256, from the `cryptography` package)
under ACCOUNTS_ENCRYPTION_KEY, a comma-separated list of keys: the first encrypts, any decrypts, so
a key is rotated by putting the new one first and re-saving the accounts.

`cryptography` is imported when a key is first used: a gateway with no stored accounts (one account
from its environment, or the simulated fleet) never loads it, 6.5 MiB of its memory."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from common.settings import EnvSettings

MAKE_A_KEY = "make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


class CipherError(ValueError):
    """A stored password that none of the keys can open (a wrong or rotated-out key)."""


def _fernet_keys(value: SecretStr) -> SecretStr:
    from cryptography.fernet import Fernet

    for key in value.get_secret_value().split(","):
        try:
            Fernet(key.strip())
        except ValueError:
            raise ValueError(f"each key must be 32 url-safe base64-encoded bytes ({MAKE_A_KEY})") from None
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
        from cryptography.fernet import Fernet, MultiFernet

        keys = settings.key.get_secret_value().split(",")
        self._fernet = MultiFernet([Fernet(k.strip()) for k in keys])

    def encrypt(self, password: str) -> str:
        return self._fernet.encrypt(password.encode()).decode()

    def decrypt(self, token: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise CipherError("the stored password opens with none of ACCOUNTS_ENCRYPTION_KEY's keys") from None
