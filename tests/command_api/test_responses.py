"""The API's JSON encoding."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import asyncpg

from command_api.responses import dumps


def test_times_uuids_and_odd_keys_are_encoded_as_the_api_documents() -> None:
    command_id, from_database = uuid.uuid4(), asyncpg.pgproto.pgproto.UUID(str(uuid.uuid4()))
    at = datetime(2026, 12, 3, 15, 18, 18, 687391, tzinfo=UTC)
    body = {
        "id": command_id,
        "read_back": from_database,
        "created_at": at,
        "whole_second": at.replace(microsecond=0),
        "elsewhere": at.astimezone(timezone(timedelta(hours=2))),
        "by_number": {1: "one"},
        "not_a_number": float("nan"),
    }
    assert json.loads(dumps(body)) == {
        "id": str(command_id),
        "read_back": str(from_database),
        "created_at": at.isoformat(),
        "whole_second": "2026-12-03T15:18:18+00:00",
        "elsewhere": "2026-12-03T17:18:18.687391+02:00",
        "by_number": {"1": "one"},
        "not_a_number": None,  # NaN is not JSON: a client's parser would refuse the whole answer
    }


def test_an_integer_past_64_bits_is_written_too() -> None:
    # A car's state may hold one (the ingest stores it); orjson refuses it, the answer must not fail.
    at = datetime(2026, 12, 3, tzinfo=UTC)
    assert json.loads(dumps({"big": 2**70, "at": at})) == {"big": 2**70, "at": at.isoformat()}
