"""What directly connected devices report (common/topics.py's device contract), validated and held
until the next flush: telemetry rows, online/offline, and the answers to configuration changes.

Like the vehicles' messages they are in the write-ahead log before their PUBACK; a flush that fails
puts them back, and the log keeps them until a flush stores them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from common import topics
from ingest.cache import MalformedMessage

MAX_TELEMETRY_BYTES = 4096
MAX_REASON = 256
MAX_HELD = 100_000
"""Reports held in memory while the database is down; beyond it the oldest are dropped (counted)."""
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
CONFIG_STATUSES = ("applied", "failed")
OTA_STATUSES = ("downloading", "installing", "succeeded", "failed")


@dataclass
class DeviceReports:
    telemetry: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    configs: list[dict[str, Any]] = field(default_factory=list)
    ota: list[dict[str, Any]] = field(default_factory=list)

    KINDS = ("telemetry", "statuses", "configs", "ota")

    def lists(self) -> list[list[dict[str, Any]]]:
        return [getattr(self, kind) for kind in self.KINDS]

    def __len__(self) -> int:
        return sum(len(reports) for reports in self.lists())

    def extend(self, other: DeviceReports) -> None:
        for mine, theirs in zip(self.lists(), other.lists(), strict=True):
            mine.extend(theirs)


def _object(payload: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedMessage(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedMessage(f"{what} must be a JSON object")
    return value


def _reading_time(value: Any, received_at: datetime) -> datetime:
    """A telemetry's own `ts` (ISO 8601 or Unix seconds), else when it arrived."""
    if value is None:
        return received_at
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            ts = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            ts = datetime.fromisoformat(value)
        else:
            raise ValueError
    except (ValueError, OverflowError, OSError):
        raise MalformedMessage("ts must be ISO 8601 or Unix seconds") from None
    if ts.tzinfo is None:
        raise MalformedMessage("ts must carry its time zone")
    if not EARLIEST <= ts <= received_at + timedelta(days=1):
        raise MalformedMessage("ts lies before 2000 or more than a day ahead")
    return ts


def _answer(payload: bytes, what: str, answers: str, statuses: tuple[str, ...]) -> dict[str, Any]:
    """A device's answer to what the platform sent: the `answers` id (an integer >= 1), a status
    and an optional reason."""
    body = _object(payload, what)
    answered, status, reason = body.get(answers), body.get("status"), body.get("reason")
    if not isinstance(answered, int) or isinstance(answered, bool) or answered < 1:
        raise MalformedMessage(f"{what} needs the {answers} it answers (an integer >= 1)")
    if status not in statuses:
        raise MalformedMessage(f"{what}'s status must be {', '.join(statuses[:-1])} or {statuses[-1]}")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise MalformedMessage(f"{what}'s reason must be a text of at most {MAX_REASON} characters")
    return {answers: answered, "status": status, "reason": reason}


class DeviceInbox:
    def __init__(self) -> None:
        self._reports = DeviceReports()
        self.accepted = 0
        self.malformed = 0
        self.dropped = 0

    def add(self, topic: str, payload: bytes, received_at: datetime) -> None:
        """Raises MalformedMessage with the reason for what the contract refuses."""
        try:
            self._add(topic, payload, received_at)
        except MalformedMessage:
            self.malformed += 1
            raise

    def _add(self, topic: str, payload: bytes, received_at: datetime) -> None:
        parsed = topics.parse_device_topic(topic)
        if parsed is None or parsed.key not in topics.DEVICE_UPLINK:
            raise MalformedMessage(f"not a device report: {topic[:120]!r}")
        device = parsed.device_id
        if parsed.key == topics.DEVICE_TELEMETRY:
            if len(payload) > MAX_TELEMETRY_BYTES:
                raise MalformedMessage(f"telemetry of {len(payload)} bytes (at most {MAX_TELEMETRY_BYTES})")
            body = _object(payload, "telemetry")
            ts = _reading_time(body.get("ts"), received_at)
            self._reports.telemetry.append({"device_id": device, "ts": ts, "payload": body})
        elif parsed.key == topics.DEVICE_STATUS:
            if payload not in (b"online", b"offline"):
                raise MalformedMessage("status must be online or offline")
            self._reports.statuses.append({"device_id": device, "online": payload == b"online", "at": received_at})
        elif parsed.key == topics.DEVICE_CONFIG_STATUS:
            answer = _answer(payload, "config/status", "version", CONFIG_STATUSES)
            self._reports.configs.append({"device_id": device, **answer, "at": received_at})
        elif parsed.key == topics.DEVICE_OTA_STATUS:
            answer = _answer(payload, "ota/status", "rollout_id", OTA_STATUSES)
            self._reports.ota.append({"device_id": device, **answer, "at": received_at})
        else:
            return  # diag/response goes to the API that asked, not to the database
        self.accepted += 1

    def take(self) -> DeviceReports:
        taken, self._reports = self._reports, DeviceReports()
        return taken

    def put_back(self, reports: DeviceReports) -> None:
        """After a failed write: before anything newer, within MAX_HELD."""
        reports.extend(self._reports)
        self._reports = reports
        for held in self._reports.lists():
            if len(held) > MAX_HELD:
                self.dropped += len(held) - MAX_HELD
                del held[: len(held) - MAX_HELD]

    def __len__(self) -> int:
        return len(self._reports)
