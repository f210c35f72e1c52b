"""Secrets at rest (common/account_secrets.py): `cryptography` is loaded only when a key is used."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from common.account_secrets import AccountCipher, AccountCipherSettings, CipherError
from tests.conftest import ROOT


def test_the_gateway_loads_no_cryptography_without_stored_accounts() -> None:
    """6.5 MiB of the gateway's memory (issue 12's idle goal) for accounts it does not have."""
    code = "import sys, gateway.__main__; print('cryptography' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"


def test_a_password_opens_with_any_of_the_keys_and_not_with_another() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    stored = AccountCipher(AccountCipherSettings.from_env({"ACCOUNTS_ENCRYPTION_KEY": old})).encrypt("correct horse")
    rotated = AccountCipher(AccountCipherSettings.from_env({"ACCOUNTS_ENCRYPTION_KEY": f"{new},{old}"}))
    assert rotated.decrypt(stored) == "correct horse"
    other = AccountCipher(AccountCipherSettings.from_env({"ACCOUNTS_ENCRYPTION_KEY": new}))
    with pytest.raises(CipherError, match="opens with none of ACCOUNTS_ENCRYPTION_KEY's keys"):
        other.decrypt(stored)
