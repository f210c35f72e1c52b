"""The other programs' status, from their retained status topics and last wills."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt

from common import topics


@dataclass
class ComponentStatus:
    state: str = "unknown"
    since: datetime | None = None


@dataclass
class StatusBoard:
    prefix: str
    components: dict[str, ComponentStatus] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._topics = {
            topics.gateway_status_topic(self.prefix): "gateway",
            topics.component_status_topic(self.prefix, "ingest"): "ingest",
        }
        for name in self._topics.values():
            self.components[name] = ComponentStatus()

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(t, 1) for t in self._topics]

    def on_message(self, message: aiomqtt.Message) -> bool:
        """Record a status message; False when the message is not a status topic."""
        name = self._topics.get(message.topic.value)
        if name is None:
            return False
        payload = message.payload.decode("utf-8", "replace") if isinstance(message.payload, bytes) else ""
        self.components[name] = ComponentStatus(payload.strip() or "unknown", datetime.now(UTC))
        return True
