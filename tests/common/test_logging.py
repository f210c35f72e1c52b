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
        logging.getLogger("test").warning(message, extra={"vin": "LSJSIM00000000001"})
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    parsed: dict[str, object] = json.loads(stream.getvalue())
    return parsed


def test_fields_cloud_logging_reads() -> None:
    line = log_line("door unlocked")
    assert (line["severity"], line["component"], line["message"]) == ("WARNING", "command_api", "door unlocked")
    assert line["vin"] == "LSJSIM00000000001"
    assert TRACE_FIELD not in line


def test_a_requests_trace_is_attached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-proj")
    token = request_trace.set("105445aa7843bc8bf206b12000100000")
    try:
        line = log_line("handled")
    finally:
        request_trace.reset(token)
    assert line[TRACE_FIELD] == "projects/my-proj/traces/105445aa7843bc8bf206b12000100000"
