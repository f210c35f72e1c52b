"""The write-ahead log: every message the broker delivers is appended here before it is acknowledged.

A QoS 1 message is acknowledged (PUBACK) once the receive callback returns, so the broker forgets
it while it still waits in the cache for the next flush. Appended records wait in memory until
`write_pending`, which the MQTT connection calls before it sends anything, PUBACKs included
(`MqttOptions.before_send`): one `write()` for every message of a socket read, and still a killed
ingest (`kill -9`, OOM) loses nothing: the kernel has the bytes before the broker has the PUBACK,
and the next start replays them. Closed segments are fsynced within a second, off the event loop
(`sync`), which narrows what a machine crash could take to the last flush interval.

Segments: the current one takes appends; each flush rotates, and a closed segment is deleted once
the batch that covers it is in the database or the spool. Records: a header (arrival time in ns,
topic length, payload length), the topic, the payload.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".wal"
HEADER = struct.Struct("<qHI")  # arrival ns, topic bytes, payload bytes
MAX_TOPIC = 65535
MAX_PENDING = 1024 * 1024
"""Bytes held in memory before they are written without waiting for `write_pending`."""


class WriteAheadLog:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        # The log owns its folder: read it once (segments of an earlier run), then keep count.
        self._closed = {path: path.stat().st_size for path in sorted(directory.glob(f"*{SUFFIX}"))}
        """Segments not yet covered by a stored flush, oldest first, with their sizes."""
        self.dropped_segments = 0
        self._sequence = int(list(self._closed)[-1].name.split(".")[0]) + 1 if self._closed else 0
        self._path, self._fd = self._open()
        self._current_bytes = 0
        self._pending = bytearray()
        self._unsynced: list[int] = []
        """Descriptors of closed segments, fsynced and closed by `sync` in a worker thread."""
        self.appended = 0

    def _open(self) -> tuple[Path, int]:
        path = self.directory / f"{self._sequence:012d}{SUFFIX}"
        self._sequence += 1
        return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def append(self, received_at: datetime, topic: str, payload: bytes) -> None:
        """Held in memory until `write_pending` (or a rotation, or a close)."""
        encoded = topic.encode()[:MAX_TOPIC]
        ns = int(received_at.timestamp() * 1e9)
        self._pending += HEADER.pack(ns, len(encoded), len(payload))
        self._pending += encoded
        self._pending += payload
        self.appended += 1
        if len(self._pending) >= MAX_PENDING:
            self.write_pending()

    def write_pending(self) -> None:
        """Hand the appended records to the kernel, in one `write()` where it takes them all: a
        killed process leaves whole records behind, but for a torn last one that replay skips."""
        if not self._pending:
            return
        view = memoryview(self._pending)
        while view:
            view = view[os.write(self._fd, view) :]
        view.release()
        self._current_bytes += len(self._pending)
        self._pending.clear()

    def rotate(self) -> list[Path]:
        """Close the current segment and start a new one; returns every closed segment still held."""
        self.write_pending()
        self._unsynced.append(self._fd)
        self._closed[self._path] = self._current_bytes
        self._path, self._fd = self._open()
        self._current_bytes = 0
        self._enforce_bound()
        return list(self._closed)

    def release(self, segments: list[Path]) -> None:
        """The messages in these segments are stored (database or spool): forget them."""
        for path in segments:
            path.unlink(missing_ok=True)
            self._closed.pop(path, None)

    def sync(self) -> None:
        """Fsync and close the segments closed since the last call (safe in a worker thread: it
        touches only descriptors the event loop has handed over)."""
        while True:
            try:
                fd = self._unsynced.pop(0)
            except IndexError:
                return
            os.fsync(fd)
            os.close(fd)

    def replay(self) -> Iterator[tuple[datetime, str, bytes]]:
        """The records of every closed segment, oldest first (a torn last record is skipped)."""
        for path in list(self._closed):
            data = path.read_bytes()
            offset = 0
            while offset + HEADER.size <= len(data):
                ns, topic_len, payload_len = HEADER.unpack_from(data, offset)
                start = offset + HEADER.size
                end = start + topic_len + payload_len
                if end > len(data):
                    break
                topic = data[start : start + topic_len].decode(errors="replace")
                yield datetime.fromtimestamp(ns / 1e9, UTC), topic, data[start + topic_len : end]
                offset = end
            if offset != len(data):
                log.warning("%s ends in a torn record (%d bytes skipped)", path.name, len(data) - offset)

    @property
    def bytes(self) -> int:
        return sum(self._closed.values()) + self._current_bytes + len(self._pending)

    def _enforce_bound(self) -> None:
        # Segments pile up only while a flush can reach neither the database nor the spool.
        while len(self._closed) > 1 and self.bytes > self.max_bytes:
            oldest = next(iter(self._closed))
            del self._closed[oldest]
            oldest.unlink(missing_ok=True)
            self.dropped_segments += 1
            log.error("write-ahead log over its bound (%d bytes): dropped segment %s", self.max_bytes, oldest.name)

    def close(self) -> None:
        """A non-empty current segment stays on disk for the next start to replay."""
        self.write_pending()
        self.sync()
        os.fsync(self._fd)
        os.close(self._fd)
        if self._current_bytes == 0:
            self._path.unlink()
