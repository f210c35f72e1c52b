"""Whatever arrives, the cache either takes it or rejects it with a reason: never another error."""

from __future__ import annotations

import contextlib

from hypothesis import example, given, settings
from hypothesis import strategies as st

from common import topics
from common.values import CONTRACT
from ingest.cache import MalformedMessage, TelemetryCache

KEYS = st.sampled_from(sorted(CONTRACT)) | st.text(min_size=1, max_size=40)
PAYLOADS = st.binary(max_size=200) | st.text(max_size=60).map(str.encode) | st.floats().map(lambda f: repr(f).encode())


@settings(max_examples=2000, deadline=None)
@given(key=KEYS, payload=PAYLOADS)
@example(key="result", payload=b"a")  # found by CI: a `/result` topic is a conversation, not a reading
@example(key="doors/locked/set", payload=b"true")
def test_any_message_is_taken_or_rejected_with_a_reason(key: str, payload: bytes) -> None:
    cache = TelemetryCache("saic")
    reason = ""
    try:
        cache.add(f"saic/acct/vehicles/LSJTEST0000000009/{key}", payload)
    except MalformedMessage as exc:
        reason = str(exc)
    conversation = key.rsplit("/", maxsplit=1)[-1] in (topics.SET_SUFFIX, topics.RESULT_SUFFIX)
    if cache.malformed:
        assert reason  # rejected, with a reason
    elif conversation or not payload:
        assert cache.accepted == 0  # a /set request, its result or an empty (clearing) payload is not a reading
    else:
        assert cache.accepted == 1
    cache.take_changes()  # and a snapshot can always be taken


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(st.tuples(KEYS, PAYLOADS), max_size=50))
def test_memory_stays_bounded_by_vehicles_not_messages(messages: list[tuple[str, bytes]]) -> None:
    cache = TelemetryCache("saic")
    for key, payload in messages:
        with contextlib.suppress(MalformedMessage):
            cache.add(f"saic/acct/vehicles/LSJTEST0000000009/{key}", payload)
    assert len(cache) <= 1
    assert cache.accepted + cache.malformed <= len(messages)
