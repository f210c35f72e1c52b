"""Mosquitto as the broker: render the runtime config and exec the binary (signals then reach it directly)."""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

from broker.config import BrokerConfig, render_mosquitto_conf


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


def exec_mosquitto(binary: str, config: BrokerConfig, runtime_dir: Path) -> None:
    run_as = pwd.getpwuid(os.getuid()).pw_name if os.getuid() == 0 else None
    conf_path = runtime_dir / "mosquitto.conf"
    conf_path.write_text(render_mosquitto_conf(config, run_as=run_as), encoding="utf-8")
    os.execv(binary, [binary, "-c", str(conf_path)])  # noqa: S606 - the configured broker binary
