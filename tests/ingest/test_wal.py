"""The write-ahead log on its own: records survive a process that never closed it, in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.wal import WriteAheadLog

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_an_unclosed_log_is_replayed_in_order(tmp_path: Path) -> None:
    crashed = WriteAheadLog(tmp_path, max_bytes=1_000_000)
    crashed.append(T0, "saic/a/vehicles/V/drivetrain/soc", b"80")
    crashed.rotate()
    crashed.append(T0 + timedelta(seconds=1), "saic/a/vehicles/V/drivetrain/soc", b"79")
    crashed.write_pending()  # as the MQTT connection does before it sends the PUBACK
    # no close(): the process was killed
    restarted = WriteAheadLog(tmp_path, max_bytes=1_000_000)
    assert [(ts, payload) for ts, _topic, payload in restarted.replay()] == [
        (T0, b"80"),
        (T0 + timedelta(seconds=1), b"79"),
    ]


def test_released_segments_are_gone_and_new_appends_are_kept(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, max_bytes=1_000_000)
    wal.append(T0, "t", b"1")
    wal.release(wal.rotate())
    wal.append(T0, "t", b"2")
    wal.close()
    assert [payload for _ts, _topic, payload in WriteAheadLog(tmp_path, 1_000_000).replay()] == [b"2"]


def test_a_torn_last_record_is_skipped(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, max_bytes=1_000_000)
    wal.append(T0, "t", b"whole")
    wal.append(T0, "t", b"torn-in-half")
    wal.close()
    (segment,) = tmp_path.glob("*.wal")
    segment.write_bytes(segment.read_bytes()[:-5])
    assert [payload for _ts, _topic, payload in WriteAheadLog(tmp_path, 1_000_000).replay()] == [b"whole"]


def test_the_bound_drops_the_oldest_segments(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, max_bytes=2_000)
    for n in range(10):
        wal.append(T0, "t", bytes([n]) * 500)
        wal.rotate()  # flushes that could store nothing: segments pile up
    assert wal.bytes <= 2_000
    assert wal.dropped_segments > 0
    assert [p[0] for _ts, _t, p in wal.replay()][-1] == 9  # the newest are kept
    wal.close()


def test_appends_reach_the_file_together_when_written(tmp_path: Path) -> None:
    """Held in memory (one `write()` for a whole socket read) until written: before the PUBACK, at a
    rotation, at a close."""
    wal = WriteAheadLog(tmp_path, max_bytes=1_000_000)
    wal.append(T0, "t", b"1")
    wal.append(T0, "t", b"2")
    (segment,) = tmp_path.glob("*.wal")
    assert segment.stat().st_size == 0
    wal.write_pending()
    assert segment.stat().st_size == wal.bytes > 0
    wal.append(T0, "t", b"3")
    closed = wal.rotate()  # the flush takes the cache's changes: the segment must hold them all
    assert [p for _ts, _t, p in wal.replay()] == [b"1", b"2", b"3"]
    assert closed == [segment]
    wal.append(T0, "t", b"4")
    wal.close()
    assert [p for _ts, _t, p in WriteAheadLog(tmp_path, 1_000_000).replay()] == [b"1", b"2", b"3", b"4"]
