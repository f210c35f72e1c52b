"""`/metrics`: the API's own Prometheus metrics, the other programs' (published over MQTT) and the
broker's `$SYS` counters, in one scrape."""

from __future__ import annotations

import contextlib
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from common import topics

SYS_PREFIX = "$SYS/broker/"
BROKER_METRICS = {  # $SYS topic (after $SYS/broker/) -> (metric name, type); both brokers publish these
    "clients/connected": ("mqtt_broker_clients_connected", "gauge"),
    "publish/messages/received": ("mqtt_broker_publish_received_total", "counter"),
    "publish/messages/sent": ("mqtt_broker_publish_sent_total", "counter"),
    "uptime": ("mqtt_broker_uptime_seconds", "gauge"),
}


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "api_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "api_http_request_duration_seconds", "HTTP request duration", ["route"], registry=self.registry
        )
        # Each request's two series, found once: prometheus_client's `labels` takes a lock and
        # checks its arguments on every call.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def middleware(self) -> Middleware:
        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            status = 500
            try:
                response: web.StreamResponse = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                counted, timed = self._series_of(request.method, route, status)
                counted.inc()
                timed.observe(time.perf_counter() - started)

        return count

    def _series_of(self, method: str, route: str, status: int) -> tuple[Counter, Histogram]:
        key = (method, route, status)
        if (series := self._series.get(key)) is None:
            series = self._series[key] = (self.requests.labels(method, route, str(status)), self.duration.labels(route))
        return series


class ProgramMetrics:
    """The latest metrics text of every other program and the broker's counters, from MQTT."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.texts: dict[str, bytes] = {}
        self.broker: dict[str, float] = {}

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(topics.metrics_topic(self.prefix, "+"), 0), (f"{SYS_PREFIX}#", 0)]

    def on_message(self, topic: str, payload: bytes) -> bool:
        if topic.startswith(SYS_PREFIX):
            known = BROKER_METRICS.get(topic.removeprefix(SYS_PREFIX))
            if known is not None:
                with contextlib.suppress(ValueError, IndexError):  # "1234" or "1234 seconds"
                    self.broker[known[0]] = float(payload.split()[0])
            return True
        parsed = topic.split("/")
        if topic.startswith(topics.internal_root(self.prefix)) and parsed[-1] == "metrics":
            self.texts[parsed[-2]] = payload
            return True
        return False

    def render(self, own: CollectorRegistry) -> bytes:
        parts = [generate_latest(own)]
        parts += [self.texts[name] for name in sorted(self.texts)]
        for name, kind in BROKER_METRICS.values():
            if name in self.broker:
                parts.append(f"# TYPE {name} {kind}\n{name} {self.broker[name]}\n".encode())
        return b"".join(parts)
