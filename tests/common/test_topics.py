from __future__ import annotations

import aiomqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from common import topics


def test_account_segment_replaces_wildcards_like_upstream() -> None:
    assert topics.account_segment("a+b#c*d$e>f@example.com") == "a_b_c_d_e_f@example.com"


def test_vehicle_topics() -> None:
    vt = topics.VehicleTopics("saic", "me@example.com", "VIN1")
    assert vt.root == "saic/me@example.com/vehicles/VIN1"
    assert vt.key(topics.DRIVETRAIN_SOC) == "saic/me@example.com/vehicles/VIN1/drivetrain/soc"
    assert vt.command("lock") == "saic/me@example.com/vehicles/VIN1/cmd/lock"
    assert vt.command_result("lock") == "saic/me@example.com/vehicles/VIN1/cmd/lock/result"


def test_filters() -> None:
    assert topics.vehicles_filter("saic", "drivetrain/#") == "saic/+/vehicles/+/drivetrain/#"
    assert topics.command_filter("saic", "a#b") == "saic/a_b/vehicles/+/cmd/+"
    assert topics.command_result_filter("saic") == "saic/+/vehicles/+/cmd/+/result"


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("saic/u/vehicles/V/drivetrain/soc", ("u", "V", "drivetrain/soc")),
        ("saic/u/vehicles/V/cmd/lock/result", ("u", "V", "cmd/lock/result")),
        ("saic/u/vehicles/V", None),
        ("saic/u/cars/V/drivetrain/soc", None),
        ("other/u/vehicles/V/drivetrain/soc", None),
        ("saic/u/vehicles//drivetrain", None),
    ],
)
def test_parse_vehicle_topic(topic: str, expected: tuple[str, str, str] | None) -> None:
    parsed = topics.parse_vehicle_topic("saic", topic)
    assert (None if parsed is None else (parsed.account, parsed.vin, parsed.path)) == expected
    if parsed is not None:
        assert parsed.category == expected[2].split("/")[0]  # type: ignore[index]


LEVELS = st.sampled_from(["saic", "acct", "v1", "result", "x"])


@given(
    topic=st.lists(LEVELS, min_size=1, max_size=5).map("/".join),
    pattern=st.tuples(
        st.lists(st.one_of(LEVELS, st.just("+")), min_size=0, max_size=5), st.booleans(), st.booleans()
    ).filter(lambda t: t[0] or t[1]),
)
def test_a_topic_filter_matches_as_aiomqtt_does(topic: str, pattern: tuple[list[str], bool, bool]) -> None:
    levels, multi, shared = pattern
    text = "/".join([*(["$share", "group"] if shared else []), *levels, *(["#"] if multi else [])])
    assert topics.TopicFilter(text).matches(topic) == aiomqtt.Topic(topic).matches(text)


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("saic/+/vehicles/+/commands/+/result", "saic/a/vehicles/V1/commands/lock/result", True),
        ("saic/+/vehicles/+/commands/+/result", "saic/a/vehicles/V1/commands/lock", False),
        ("saic/#", "saic", True),  # `#` takes the parent level too
        ("#", "$SYS/broker/uptime", False),  # MQTT: no wildcard at the start matches a `$` topic
        ("+/broker/uptime", "$SYS/broker/uptime", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
    ],
)
def test_topic_filter_rules(pattern: str, topic: str, matches: bool) -> None:
    assert topics.TopicFilter(pattern).matches(topic) is matches
