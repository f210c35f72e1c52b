"""Counting unexpected exits per program, to alert once when one keeps restarting."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field


@dataclass
class RestartTracker:
    threshold: int = 3
    window: float = 300.0
    _exits: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def exited(self, program: str, now: float) -> int:
        """Record an unexpected exit; returns how many fell inside the window."""
        exits = self._exits[program]
        exits.append(now)
        self._forget(exits, now)
        return len(exits)

    def restarting(self, program: str, now: float) -> bool:
        exits = self._exits[program]
        self._forget(exits, now)
        return len(exits) >= self.threshold

    def programs(self) -> list[str]:
        return list(self._exits)

    def _forget(self, exits: deque[float], now: float) -> None:
        while exits and exits[0] <= now - self.window:
            exits.popleft()
