"""Publish-on-change of retained telemetry, with a full republish after every (re)connect.

Retained values stay identical to the upstream gateway's while a parked fleet costs almost
nothing; an in-memory broker that restarted gets everything back on the reconnect.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from common import topics
from common.mqtt import MqttConnection, MqttNotConnected
from common.values import TelemetryValue, encode

log = logging.getLogger(__name__)

# The reading's time goes first so that the ingest sees it with (or before) the values it dates.
_FIRST = topics.REFRESH_LAST_VEHICLE_STATE
PUBLISH_CHUNK = 500
_IMMUTABLE = (bool, int, float, str, datetime)
"""Values compared as they are; a JSON value (a dict or list the source may reuse) by its payload."""


def _same(known: TelemetryValue, value: TelemetryValue) -> bool:
    return known == value and type(known) is type(value) and isinstance(value, _IMMUTABLE)


class TelemetryPublisher:
    def __init__(self, mqtt: MqttConnection, qos: int = 1) -> None:
        self.mqtt = mqtt
        self.qos = qos
        self._last: dict[str, dict[str, tuple[TelemetryValue, bytes]]] = {}
        """Per topic root, each key's last published value and payload."""
        self.published = 0

    async def publish_changes(self, root: str, values: Mapping[str, TelemetryValue]) -> int:
        """Publish the values that differ from what was last published; returns how many."""
        last = self._last.setdefault(root, {})
        changed: list[tuple[str, bytes]] = []
        # Most of a poll's values are unchanged: compare values first, and encode only what differs.
        for key, value in values.items():
            known = last.get(key)
            if known is not None and _same(known[0], value):
                continue
            payload = encode(value).encode()
            last[key] = (value, payload)
            if known is None or known[1] != payload:
                changed.insert(0 if key == _FIRST else len(changed), (f"{root}/{key}", payload))
        await self._publish(changed)
        return len(changed)

    async def republish_all(self) -> None:
        items = [(f"{root}/{key}", payload) for root, last in self._last.items() for key, (_, payload) in last.items()]
        await self._publish(items)
        log.info("republished %d retained values", len(items))

    async def _publish(self, items: list[tuple[str, bytes]]) -> None:
        failed = 0
        error: Exception | None = None
        # In bounded chunks: a fleet's full republish is tens of thousands of messages.
        for start in range(0, len(items), PUBLISH_CHUNK):
            chunk = items[start : start + PUBLISH_CHUNK]
            try:
                too_large = await self.mqtt.publish_many(chunk, qos=self.qos, retain=True)
            except Exception as exc:  # the connection's loop reports and recovers a drop
                failed += len(chunk)
                error = error or exc
                continue
            failed += len(too_large)
            error = error or next(iter(too_large), None)
        self.published += len(items) - failed
        if error is not None and not isinstance(error, MqttNotConnected):
            log.warning("%d of %d publishes failed: %s", failed, len(items), error)
        # Values that did not go out are sent by the republish that follows the reconnect.
