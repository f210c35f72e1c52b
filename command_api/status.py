"""The other programs' status: each instance's presence (renewed every few seconds, cleared on a
clean stop), and the shared status topics and last wills for programs that publish no presence."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from common import topics

STALE_AFTER_PERIODS = 3
"""An instance silent for this many of its presence periods is gone (it crashed, or lost the broker)."""
FORGET_AFTER = timedelta(hours=1)
"""A stale instance is left out of the report after this long (its retained presence stays)."""
COMPONENTS = ("gateway", "ingest")


@dataclass
class ComponentStatus:
    state: str = "unknown"
    since: datetime | None = None


@dataclass(frozen=True)
class Presence:
    at: datetime
    every: float

    def fresh(self, now: datetime) -> bool:
        return now - self.at <= timedelta(seconds=self.every * STALE_AFTER_PERIODS)


@dataclass
class StatusBoard:
    prefix: str
    components: dict[str, ComponentStatus] = field(default_factory=dict)
    instances: dict[str, dict[str, Presence]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._topics = {
            topics.gateway_status_topic(self.prefix): "gateway",
            topics.component_status_topic(self.prefix, "ingest"): "ingest",
        }
        for name in self._topics.values():
            self.components[name] = ComponentStatus()
        self._presence_filter = topics.TopicFilter(topics.instance_topic(self.prefix, "+", "+"))

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(t, 1) for t in (*self._topics, self._presence_filter.pattern)]

    def on_message(self, topic: str, payload: bytes) -> bool:
        """Record a status message; False when the message is not a status topic."""
        if self._presence_filter.matches(topic):
            *_, component, _instances, instance = topic.split("/")
            self._presence(component, instance, payload.decode("utf-8", "replace"))
            return True
        name = self._topics.get(topic)
        if name is None:
            return False
        self.components[name] = ComponentStatus(
            payload.decode("utf-8", "replace").strip() or "unknown", datetime.now(UTC)
        )
        return True

    def _presence(self, component: str, instance: str, payload: str) -> None:
        known = self.instances.setdefault(component, {})
        try:
            body = json.loads(payload) if payload else None
            presence = None if body is None else Presence(datetime.fromisoformat(body["at"]), float(body["every"]))
        except (ValueError, KeyError, TypeError):
            return  # not ours to crash on; the publisher is one of our programs
        if presence is None:
            known.pop(instance, None)  # a clean stop
        else:
            known[instance] = presence

    def view(self, now: datetime | None = None) -> dict[str, dict[str, Any]]:
        """Per component: ok while any instance is present; each instance's own status beside it.
        A component whose programs publish no presence is as its shared status topic says."""
        now = now or datetime.now(UTC)
        report: dict[str, dict[str, Any]] = {}
        for name in COMPONENTS:
            shared = self.components[name]
            present = {i: p for i, p in self.instances.get(name, {}).items() if now - p.at <= FORGET_AFTER}
            if not present:
                state = {"online": "ok", "offline": "down"}.get(shared.state, shared.state)
                report[name] = {"status": state, "since": shared.since}
                continue
            instances = {i: {"status": "ok" if p.fresh(now) else "stale", "seen": p.at} for i, p in present.items()}
            live = any(i["status"] == "ok" for i in instances.values())
            report[name] = {"status": "ok" if live else "down", "since": shared.since, "instances": instances}
        return report


@dataclass
class AlertBoard:
    """Every program's open alerts and latest alert events, from their retained alerts topics."""

    prefix: str
    by_component: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._filter = topics.TopicFilter(topics.alerts_topic(self.prefix, "+"))

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(self._filter.pattern, 1)]

    def on_message(self, topic: str, payload: bytes) -> bool:
        if not self._filter.matches(topic):
            return False
        component = topic.split("/")[-2]
        try:
            body = json.loads(payload)
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
