"""Secrets at rest (common/account_secrets.py): `cryptography` is loaded only when a key is used."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from common.account_secrets import AccountCipher, AccountCipherSettings, CipherError, DeviceCipherSettings
from common.settings import SettingsError
from tests.conftest import ROOT


def test_the_gateway_loads_no_cryptography_without_stored_accounts() -> None:
    """6.5 MiB of the gateway's memory (issue 12's idle goal) for accounts it does not have."""
    code = "import sys, gateway.__main__; print('cryptography' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"


def test_a_configured_key_loads_cryptography_only_when_it_is_first_used() -> None:
    """An API with devices enabled and none connected keeps the 8 MiB (the local stack is one)."""
    key = Fernet.generate_key().decode()
    code = (
        "import sys; from common.account_secrets import AccountCipher, DeviceCipherSettings\n"
        f"cipher = AccountCipher(DeviceCipherSettings.from_env({{'DEVICES_ENCRYPTION_KEY': '{key}'}}))\n"
        "print('cryptography' in sys.modules); cipher.encrypt('secret'); print('cryptography' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == ["False", "True"]


@pytest.mark.parametrize(
    "keys",
    [
        "too short",
        Fernet.generate_key().decode()[:-4],  # 30 bytes
        base64.urlsafe_b64encode(bytes(33)).decode(),
        f"{Fernet.generate_key().decode()},",  # an empty second key
        "é" * 44,
    ],
)
def test_a_key_that_fernet_would_refuse_is_refused_with_how_to_make_one(keys: str) -> None:
    with pytest.raises(SettingsError, match=r"32 url-safe base64-encoded bytes \(make one with"):
        DeviceCipherSettings.from_env({"DEVICES_ENCRYPTION_KEY": keys})


def test_a_password_opens_with_any_of_the_keys_and_not_with_another() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    stored = AccountCipher(AccountCipherSettings.from_env({"ACCOUNTS_ENCRYPTION_KEY": old})).encrypt("correct horse")
    rotated = AccountCipher(AccountCipherSettings.from_env({"ACCOUNTS_ENCRYPTION_KEY": f"{new},{old}"}))
    assert rotated.decrypt(stored) == "correct horse"
    other = AccountCipher(AccountCipherSettings.from_env({"ACCOUNTS_ENCRYPTION_KEY": new}))
    with pytest.raises(CipherError, match="opens with none of ACCOUNTS_ENCRYPTION_KEY's keys"):
        other.decrypt(stored)
