"""One JSON object per line on stdout: `severity`, `component`, `message` (Cloud Logging's field names)."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO, override

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

request_trace: ContextVar[str | None] = ContextVar("request_trace", default=None)
"""The Cloud Trace id of the HTTP request being handled, set by the API from X-Cloud-Trace-Context."""
TRACE_FIELD = "logging.googleapis.com/trace"


def trace_field(trace_id: str) -> dict[str, str]:
    """Cloud Logging groups a request's lines by `projects/<project>/traces/<id>`; without a known
    project the bare id is still logged."""
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCP_PROJECT")
    if project:
        return {TRACE_FIELD: f"projects/{project}/traces/{trace_id}"}
    return {"trace_id": trace_id}


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    @override
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "severity": record.levelname,
            "component": self.component,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (trace_id := request_trace.get()) is not None:
            entry.update(trace_field(trace_id))
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str)


def setup_logging(component: str, level: str = "INFO", stream: TextIO = sys.stdout) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(component))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter at INFO drowns the programs' own lines: httpx alone logs every SAIC request
    # (32,000 lines per 90 s at 1,000 cars). LOG_LEVEL=DEBUG lets it all through.
    quiet = logging.WARNING if root.level > logging.DEBUG else logging.DEBUG
    for noisy in ("amqtt", "transitions", "apscheduler", "aiohttp.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(quiet)
