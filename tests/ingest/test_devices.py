"""What the ingest takes from directly connected devices, and what it refuses with the reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.cache import MalformedMessage
from ingest.devices import MAX_HELD, DeviceInbox, DeviceReports

DEVICE = "0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_reports_are_taken_with_their_own_time_or_their_arrival() -> None:
    inbox = DeviceInbox()
    inbox.add(f"devices/{DEVICE}/telemetry", b'{"ts": "2026-11-30T11:59:00+00:00", "t": 21.5}', NOW)
    inbox.add(f"devices/{DEVICE}/telemetry", b'{"ts": 1796040000, "t": 22}', NOW)
    inbox.add(f"devices/{DEVICE}/telemetry", b'{"targets": [{"x": 1}]}', NOW)
    inbox.add(f"devices/{DEVICE}/status", b"online", NOW)
    inbox.add(f"devices/{DEVICE}/config/status", b'{"version": 3, "status": "failed", "reason": "range"}', NOW)
    reports = inbox.take()
    assert [r["ts"] for r in reports.telemetry] == [
        datetime(2026, 11, 30, 11, 59, tzinfo=UTC),
        datetime.fromtimestamp(1796040000, UTC),
        NOW,
    ]
    assert reports.statuses == [{"device_id": DEVICE, "online": True, "at": NOW}]
    assert reports.configs == [{"device_id": DEVICE, "version": 3, "status": "failed", "reason": "range", "at": NOW}]
    assert len(inbox) == 0


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (f"devices/{DEVICE}/telemetry", b"[1, 2]", "JSON object"),
        (f"devices/{DEVICE}/telemetry", b"{", "not JSON"),
        (f"devices/{DEVICE}/telemetry", b'{"x": "' + b"a" * 5000 + b'"}', "at most 4096"),
        (f"devices/{DEVICE}/telemetry", b'{"ts": "2026-11-30T11:59:00"}', "time zone"),
        (f"devices/{DEVICE}/telemetry", b'{"ts": "1999-01-01T00:00:00+00:00"}', "before 2000"),
        (f"devices/{DEVICE}/telemetry", b'{"ts": true}', "ISO 8601"),
        (f"devices/{DEVICE}/status", b"maybe", "online or offline"),
        (f"devices/{DEVICE}/config/status", b'{"version": 0, "status": "applied"}', "version"),
        (f"devices/{DEVICE}/config/status", b'{"version": 2, "status": "done"}', "applied or failed"),
        (f"devices/{DEVICE.upper()}/telemetry", b"{}", "not a device report"),
        (f"devices/{DEVICE}/config/update", b"{}", "not a device report"),
    ],
)
def test_what_breaks_the_contract_is_refused_with_the_reason(topic: str, payload: bytes, reason: str) -> None:
    inbox = DeviceInbox()
    with pytest.raises(MalformedMessage, match=reason):
        inbox.add(topic, payload, NOW)
    assert (inbox.malformed, len(inbox)) == (1, 0)


def test_reports_put_back_go_first_and_stay_bounded() -> None:
    inbox = DeviceInbox()
    inbox.add(f"devices/{DEVICE}/status", b"offline", NOW)
    failed = DeviceReports(statuses=[{"device_id": DEVICE, "online": True, "at": NOW}] * MAX_HELD)
    inbox.put_back(failed)
    reports = inbox.take()
    assert len(reports.statuses) == MAX_HELD
    assert reports.statuses[-1]["online"] is False  # the newest kept, the oldest dropped
    assert inbox.dropped == 1
