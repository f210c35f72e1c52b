"""Alerts: an ERROR log line always, a Telegram message and a webhook call when configured.

Each incident is announced once when it starts and once when it clears, however often the
condition is checked in between. Delivery failures are logged and never raised: an alert must not
take down the program that raises it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr

from common.settings import EnvSettings

if TYPE_CHECKING:
    import aiohttp

    from common.mqtt import MqttConnection

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT = 10.0
RECENT_ALERTS = 50


class AlertSettings(EnvSettings):
    telegram_bot_token: SecretStr | None = Field(None, alias="TELEGRAM_BOT_TOKEN")
    telegram_chat_id: str | None = Field(None, alias="TELEGRAM_CHAT_ID")
    telegram_api_base: str = Field(
        "https://api.telegram.org", alias="TELEGRAM_API_BASE", pattern=r"^https?://", description="for tests"
    )
    webhook_url: str | None = Field(None, alias="ALERT_WEBHOOK_URL", pattern=r"^https?://")


@dataclass
class Alerts:
    component: str
    settings: AlertSettings
    active: dict[str, datetime] = field(default_factory=dict)
    """Open incidents by key, with the time each started."""
    recent: deque[dict[str, str]] = field(default_factory=lambda: deque(maxlen=RECENT_ALERTS))
    """The latest firings and resolutions, newest last (for the operations console)."""
    on_change: Callable[[Alerts], None] | None = None

    async def fire(self, key: str, message: str) -> None:
        """Open incident `key` (a vehicle, a program); only the first call per incident notifies."""
        if key in self.active:
            return
        self.active[key] = datetime.now(UTC)
        log.error("ALERT %s", message, extra={"alert": key, "alert_state": "firing"})
        self._record(key, "firing", message)
        await self._deliver(key, "firing", message)

    async def clear(self, key: str, message: str) -> None:
        started = self.active.pop(key, None)
        if started is None:
            return
        lasted = (datetime.now(UTC) - started).total_seconds()
        text = f"{message} (after {lasted:.0f}s)"
        log.warning("RESOLVED %s", text, extra={"alert": key, "alert_state": "resolved"})
        self._record(key, "resolved", text)
        await self._deliver(key, "resolved", text)

    async def note(self, key: str, message: str) -> None:
        """An event worth seeing in the console's list (a car's message), not an incident: logged and
        listed, never sent to Telegram or the webhook."""
        log.info("EVENT %s", message, extra={"alert": key, "alert_state": "event"})
        self._record(key, "event", message)

    def _record(self, key: str, state: str, message: str) -> None:
        at = datetime.now(UTC).isoformat()
        self.recent.append({"alert": key, "state": state, "component": self.component, "message": message, "at": at})
        if self.on_change is not None:
            self.on_change(self)

    def snapshot(self) -> dict[str, object]:
        """What the operations console shows: the open incidents and the latest events."""
        return {
            "component": self.component,
            "active": [{"alert": k, "since": v.isoformat()} for k, v in self.active.items()],
            "recent": list(self.recent),
        }

    async def _deliver(self, key: str, state: str, message: str) -> None:
        prefix = "🔴" if state == "firing" else "✅"
        posts: list[tuple[str, dict[str, object]]] = []
        s = self.settings
        if s.telegram_bot_token is not None and s.telegram_chat_id:
            url = f"{s.telegram_api_base}/bot{s.telegram_bot_token.get_secret_value()}/sendMessage"
            posts.append((url, {"chat_id": s.telegram_chat_id, "text": f"{prefix} [{self.component}] {message}"}))
        if s.webhook_url:
            posts.append(
                (
                    s.webhook_url,
                    {
                        "alert": key,
                        "state": state,
                        "component": self.component,
                        "message": message,
                        "at": datetime.now(UTC).isoformat(),
                    },
                )
            )
        if not posts:
            return
        import aiohttp  # only when an alert is delivered: the process monitor stays small without it

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT)) as http:
            await asyncio.gather(*(self._post(http, url, body) for url, body in posts))

    @staticmethod
    async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, object]) -> None:
        import aiohttp

        where = url.split("/bot", maxsplit=1)[0]  # never log the bot token
        try:
            async with http.post(url, json=body) as response:
                if not response.ok:
                    log.warning("alert delivery to %s answered %d", where, response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("alert delivery to %s failed: %s", where, exc)


def retain_on_the_broker(alerts: Alerts, mqtt: MqttConnection, topic: str) -> None:
    """Keep `alerts`' snapshot retained on `topic` for the operations console: at every change, and
    at every connect (a snapshot retained before a crash must not outlive its incidents)."""
    import aiomqtt  # here: the process monitor, which has no broker connection, stays small

    from common.mqtt import MqttNotConnected

    publishes: set[asyncio.Task[None]] = set()

    async def publish() -> None:
        with contextlib.suppress(MqttNotConnected, aiomqtt.MqttError):  # the log line has it already
            await mqtt.publish(topic, json.dumps(alerts.snapshot()), retain=True)

    def changed(_alerts: Alerts) -> None:
        task = asyncio.create_task(publish())
        publishes.add(task)
        task.add_done_callback(publishes.discard)

    alerts.on_change = changed
    mqtt.options.on_connect.append(publish)
