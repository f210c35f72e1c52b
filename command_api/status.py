"""The other programs' status, from their retained status topics and last wills."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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


@dataclass
class AlertBoard:
    """Every program's open alerts and latest alert events, from their retained alerts topics."""

    prefix: str
    by_component: dict[str, dict[str, Any]] = field(default_factory=dict)

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(topics.alerts_topic(self.prefix, "+"), 1)]

    def on_message(self, message: aiomqtt.Message) -> bool:
        if not message.topic.matches(topics.alerts_topic(self.prefix, "+")):
            return False
        component = message.topic.value.split("/")[-2]
        try:
            body = json.loads(message.payload if isinstance(message.payload, bytes) else b"")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return True  # not ours to crash on; the publisher is one of our programs
        if isinstance(body, dict):
            self.by_component[component] = body
        return True

    def view(self) -> dict[str, Any]:
        active = [a | {"component": c} for c, body in self.by_component.items() for a in body.get("active", [])]
        recent = [e for body in self.by_component.values() for e in body.get("recent", [])]
        recent.sort(key=lambda e: str(e.get("at", "")), reverse=True)
        return {"active": active, "recent": recent}
