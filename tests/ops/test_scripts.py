"""scripts/deploy.sh, logs.sh, restart.sh and status.sh against a fake `gcloud` that records its
arguments (Google Cloud cannot be reached from here; this is the one stand-in)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

FAKE_GCLOUD = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["FAKE_GCLOUD_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if "--format=value(status.url)" in sys.argv:
    print(os.environ.get("FAKE_SERVICE_URL", ""))
"""


@dataclass
class Gcloud:
    log: Path
    env: dict[str, str]

    def run(self, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / "scripts" / script), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def gcloud(tmp_path: Path) -> Gcloud:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "gcloud"
    fake.write_text(FAKE_GCLOUD)
    fake.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "FAKE_GCLOUD_LOG": str(tmp_path / "gcloud.log"),
    }
    return Gcloud(tmp_path / "gcloud.log", env)


def flags(call: list[str]) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in call if arg.startswith("--") and "=" in arg)


def test_deploy_builds_pushes_and_deploys_with_secrets(gcloud: Gcloud) -> None:
    result = gcloud.run("deploy.sh", "--project", "my-proj", "--tag", "v1", "--secret", "TELEGRAM_BOT_TOKEN=tg-token")
    assert result.returncode == 0, result.stderr
    build, deploy = gcloud.calls()
    assert build[:2] == ["builds", "submit"]
    assert flags(build)["tag"] == "gcr.io/my-proj/mtc-backend:v1"
    assert flags(build)["project"] == "my-proj"
    assert deploy[:3] == ["run", "deploy", "mtc-backend"]
    options = flags(deploy)
    assert options["image"] == "gcr.io/my-proj/mtc-backend:v1"
    assert options["region"] == "asia-east1"
    assert "--no-cpu-throttling" in deploy  # CPU always allocated
    assert (options["min-instances"], options["max-instances"]) == ("1", "1")
    secrets = dict(pair.split("=", 1) for pair in options["set-secrets"].split(","))
    assert secrets["SAIC_PWD"] == "saic-pwd:latest"
    assert secrets["DATABASE_URL"] == "database-url:latest"
    assert secrets["TELEGRAM_BOT_TOKEN"] == "tg-token:latest"
    assert "SAIC_PWD" not in options.get("set-env-vars", "")  # never a plain variable


def test_logs_use_the_per_component_filter(gcloud: Gcloud) -> None:
    result = gcloud.run(
        "logs.sh", "ingest", "--limit", "20", "--since", "2h", "--severity", "ERROR", "--region", "europe-west1"
    )
    assert result.returncode == 0, result.stderr
    [call] = gcloud.calls()
    assert call[:2] == ["logging", "read"]
    log_filter = call[2]
    assert 'resource.labels.service_name="mtc-backend"' in log_filter
    assert 'resource.labels.location="europe-west1"' in log_filter
    assert 'jsonPayload.component="ingest"' in log_filter
    assert "severity>=ERROR" in log_filter
    assert (flags(call)["limit"], flags(call)["freshness"]) == ("20", "2h")


def test_restart_deploys_a_new_revision(gcloud: Gcloud) -> None:
    result = gcloud.run("restart.sh", "--service", "other", "--project", "p")
    assert result.returncode == 0, result.stderr
    [call] = gcloud.calls()
    assert call[:4] == ["run", "services", "update", "other"]
    assert flags(call)["update-env-vars"].startswith("RESTARTED_AT=")


def test_status_describes_the_service(gcloud: Gcloud) -> None:
    result = gcloud.run("status.sh")
    assert result.returncode == 0, result.stderr
    describe, revisions = gcloud.calls()
    assert describe[:4] == ["run", "services", "describe", "mtc-backend"]
    assert revisions[:3] == ["run", "revisions", "list"]


@pytest.mark.parametrize(
    ("script", "args", "reason"),
    [
        ("deploy.sh", [], "--project is required"),
        ("deploy.sh", ["--project", "p", "--tag", "bad tag!"], "--tag needs"),
        ("deploy.sh", ["--project", "p", "--secret", "lowercase=x"], "--secret needs VAR=NAME"),
        ("logs.sh", ["kitchen"], "unknown component: kitchen"),
        ("logs.sh", ["--limit", "lots"], "--limit needs a positive number"),
        ("logs.sh", ["--region"], "--region needs a value"),
        ("restart.sh", ["now"], "unexpected argument: now"),
        ("status.sh", ["--verbose"], "unknown argument: --verbose"),
    ],
)
def test_bad_arguments_print_the_usage(gcloud: Gcloud, script: str, args: list[str], reason: str) -> None:
    result = gcloud.run(script, *args)
    assert result.returncode == 2
    assert f"error: {reason}" in result.stderr
    assert f"Usage: scripts/{script}" in result.stderr
    assert gcloud.calls() == []  # nothing was run


@pytest.mark.parametrize("script", ["deploy.sh", "logs.sh", "restart.sh", "status.sh"])
def test_help(gcloud: Gcloud, script: str) -> None:
    result = gcloud.run(script, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"Usage: scripts/{script}")
