"""Malformed messages set aside with their reason, written to the `dead_letters` table by each flush.

Bounded in memory: while the database is down only the newest `limit` are kept, and the number
dropped is counted, so a flood of garbage cannot exhaust memory.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

MAX_PAYLOAD = 64 * 1024
"""Longer payloads are cut; the reason says so."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_at: datetime
    topic: str
    payload: bytes
    reason: str


class DeadLetters:
    def __init__(self, limit: int = 10_000) -> None:
        self._items: deque[DeadLetter] = deque(maxlen=limit)
        self.recorded = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, received_at: datetime, topic: str, payload: bytes, reason: str) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        if len(payload) > MAX_PAYLOAD:
            payload, reason = payload[:MAX_PAYLOAD], f"{reason} (payload cut to {MAX_PAYLOAD} of {len(payload)} bytes)"
        self._items.append(DeadLetter(received_at, topic[:1024], payload, reason[:1024]))

    def take(self) -> list[DeadLetter]:
        taken = list(self._items)
        self._items.clear()
        return taken

    def put_back(self, items: list[DeadLetter]) -> None:
        """After a failed write: older than anything added since, so they go first (within the bound)."""
        kept = list(self._items)
        self._items.clear()
        for item in [*items, *kept]:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)
