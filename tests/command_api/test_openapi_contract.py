"""Schemathesis against the running API (`python -m command_api`, as supervisord starts it): every
operation in the OpenAPI document, generated requests (valid and invalid), no server error and no
response that breaks the document."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from broker.mosquitto import find_mosquitto
from common.settings import DatabaseSettings
from local_stack.ports import free_port, wait_for_port
from tests.command_api.conftest import SERVICE_KEY, add_history, seed
from tests.conftest import ROOT, start_broker, stop_process

FIRMWARE_KEY = ec.generate_private_key(ec.SECP256R1())
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


async def _seed(database_url: str) -> None:
    db = DatabaseSettings.from_env({"DATABASE_URL": database_url})
    await seed(db)
    await add_history(db, "LSJALPHA000000001", 30, datetime(2026, 5, 1, tzinfo=UTC))
    conn = await asyncpg.connect(database_url)
    try:  # the document's example VIN, so that generated requests reach a real vehicle too
        await conn.execute("INSERT INTO vehicles (vin, account) VALUES ('LSJTEST0000000001', 'acct')")
    finally:
        await conn.close()


def test_schemathesis_finds_no_server_error_and_no_schema_violation(database_url: str, tmp_path: Path) -> None:
    asyncio.run(_seed(database_url))
    broker = start_broker("mosquitto" if find_mosquitto() else "amqtt", tmp_path / "broker")
    port = free_port()
    env = {
        **os.environ,
        **broker.env(),
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "API_PROFILE": "production",
        "COMMAND_API_KEY": SERVICE_KEY,
        "COMMAND_TIMEOUT": "2",
        "COMMAND_WAIT": "0",
        "ACCOUNTS_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DEVICES_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "FIRMWARE_SIGNING_PUBLIC_KEY": FIRMWARE_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        "ACCOUNT_VERIFY_WAIT": "0",
        "DIAG_WAIT": "2",  # no gateway here: a new account answers 202, pending
        "RATE_LIMIT_REQUESTS_PER_MINUTE": "100000",
        "RATE_LIMIT_VEHICLE_COMMANDS_PER_MINUTE": "100000",
    }
    log = (tmp_path / "api.log").open("wb")
    api = subprocess.Popen([sys.executable, "-m", "command_api"], env=env, cwd=ROOT, stdout=log, stderr=log)
    try:
        wait_for_port(port, timeout=30)
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"http://127.0.0.1:{port}/api/openapi.json",
                "--checks",
                CHECKS,
                "--header",
                f"X-API-Key: {SERVICE_KEY}",
                "--workers",  # generating cases and serving them overlap: 62 s against 75 with one
                "2",
                "--max-examples",
                "15",
                "--seed",
                "20261123",
                "--request-timeout",
                "10",
                "--no-color",
                # Health answers 503 by design while a component is down, and here the gateway and
                # ingest are not running; tests/command_api/test_api.py covers it.
                "--exclude-path",
                "/api/health",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    finally:
        stop_process(api)
        stop_process(broker.process)
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "unhandled error" not in (tmp_path / "api.log").read_text(errors="replace")
