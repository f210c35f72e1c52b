"""Batches the database could not take, on local disk in the order they came, bounded in bytes.

Values are stored as their MQTT payload text (common.values), so a replay decodes them exactly as
the live path does. Each batch is one file, written to a temporary name, fsynced and renamed, so a
crash never leaves half a batch behind.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from common.values import decode, encode
from ingest.cache import VehicleSnapshot

log = logging.getLogger(__name__)

SUFFIX = ".batch.json"


def snapshot_to_json(snapshot: VehicleSnapshot) -> dict[str, Any]:
    return {
        "vin": snapshot.vin,
        "account": snapshot.account,
        "ts": snapshot.ts.isoformat() if snapshot.ts else None,
        "received_at": snapshot.received_at.isoformat(),
        "ts_from_arrival": snapshot.ts_from_arrival,
        "values": {key: encode(value) for key, value in snapshot.values.items()},
        "changed": sorted(snapshot.changed),
        "unsaved": None if snapshot.unsaved is None else sorted(snapshot.unsaved),
    }


def _from_json(data: dict[str, Any]) -> VehicleSnapshot:
    return VehicleSnapshot(
        vin=data["vin"],
        account=data["account"],
        ts=datetime.fromisoformat(data["ts"]) if data["ts"] else None,
        received_at=datetime.fromisoformat(data["received_at"]),
        ts_from_arrival=data["ts_from_arrival"],
        values={key: decode(key, text.encode()) for key, text in data["values"].items()},
        changed=frozenset(data["changed"]),
        unsaved=None if data.get("unsaved") is None else frozenset(data["unsaved"]),
    )


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.full_events = 0
        self._full = False
        self._sequence = itertools.count()
        directory.mkdir(parents=True, exist_ok=True)
        # The spool owns its folder: read it once (batches left by an earlier run), then keep count.
        self._sizes = {path: path.stat().st_size for path in sorted(directory.glob(f"*{SUFFIX}"))}

    def files(self) -> list[Path]:
        """Stored batch files, oldest first."""
        return list(self._sizes)

    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())

    def append(self, batch: list[VehicleSnapshot]) -> bool:
        """Store a batch; False (and one loud log line per episode) when the bound is reached."""
        body = json.dumps([snapshot_to_json(s) for s in batch]).encode()
        stored = self.bytes
        if stored + len(body) > self.max_bytes:
            if not self._full:
                self._full = True
                self.full_events += 1
                log.error(
                    "ingest spool full (%d bytes, bound %d): newer batches stay in memory until the database returns",
                    stored,
                    self.max_bytes,
                )
            return False
        self._full = False
        name = f"{time.time_ns():020d}-{next(self._sequence):06d}{SUFFIX}"
        temporary = self.directory / f".{name}.tmp"
        with temporary.open("wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        path = self.directory / name
        temporary.rename(path)
        self._sizes[path] = len(body)
        return True

    def batches(self) -> Iterator[tuple[Path, list[VehicleSnapshot]]]:
        """Stored batches, oldest first."""
        for path in self.files():
            yield path, [_from_json(item) for item in json.loads(path.read_bytes())]

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self._sizes.pop(path, None)
        self._full = False
