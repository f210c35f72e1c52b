"""One JSON object per line with Cloud Logging's field names, and a request's trace when there is one."""

from __future__ import annotations

import io
import json
import logging

import pytest

from common.logging import TRACE_FIELD, request_trace, setup_logging


def log_line(message: str) -> dict[str, object]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("command_api", "INFO", stream=stream)
    try:
        logging.getLogger("test").warning(message, extra={"vin": "LSJTEST0000000001"})
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    parsed: dict[str, object] = json.loads(stream.getvalue())
    return parsed


def test_fields_cloud_logging_reads() -> None:
    line = log_line("door unlocked")
    assert (line["severity"], line["component"], line["message"]) == ("WARNING", "command_api", "door unlocked")
    assert line["vin"] == "LSJTEST0000000001"
    assert TRACE_FIELD not in line


def test_a_requests_trace_is_attached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-proj")
    token = request_trace.set("105445aa7843bc8bf206b12000100000")
    try:
        line = log_line("handled")
    finally:
        request_trace.reset(token)
    assert line[TRACE_FIELD] == "projects/my-proj/traces/105445aa7843bc8bf206b12000100000"


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_a_line_per_http_request_only_when_debugging(level: str, shown: bool) -> None:
    """httpx logs every SAIC request at INFO: 32,000 lines per 90 s at 1,000 cars."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("gateway", level, stream=stream)
    try:
        logging.getLogger("httpx").info('HTTP Request: POST https://example/vehicle/status "HTTP/1.1 200 OK"')
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        setup_logging("tests", "INFO", stream=io.StringIO())
        root.handlers[:], root.level = saved[0], saved[1]
    assert ("HTTP Request" in stream.getvalue()) is shown
