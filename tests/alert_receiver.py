"""A local HTTP server that records alert deliveries: the generic webhook, and Telegram's Bot API
(`/bot<token>/sendMessage`), which cannot be reached from here, so this stands in for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from local_stack.ports import free_port
from tests.helpers import serving


@dataclass
class AlertReceiver:
    base: str
    webhook: list[dict[str, Any]] = field(default_factory=list)
    telegram: list[dict[str, Any]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {
            "ALERT_WEBHOOK_URL": f"{self.base}/webhook",
            "TELEGRAM_BOT_TOKEN": "123:test-token",
            "TELEGRAM_CHAT_ID": "42",
            "TELEGRAM_API_BASE": self.base,
        }


@pytest.fixture
async def alert_receiver() -> AsyncIterator[AlertReceiver]:
    port = free_port()
    receiver = AlertReceiver(f"http://127.0.0.1:{port}")

    async def webhook(request: web.Request) -> web.Response:
        receiver.webhook.append(await request.json())
        return web.json_response({"ok": True})

    async def telegram(request: web.Request) -> web.Response:
        if request.match_info["token"] != "123:test-token":
            return web.json_response({"ok": False}, status=401)
        receiver.telegram.append(await request.json())
        return web.json_response({"ok": True, "result": {}})

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    app.router.add_post("/bot{token}/sendMessage", telegram)
    async with serving(app, port):
        yield receiver
