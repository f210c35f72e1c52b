from __future__ import annotations

from pathlib import Path

import pytest

from broker.acl import Access, AclFile, AclSyntaxError, filter_covers, topic_matches

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("sub_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
        ("a/b", "a/c", False),
    ],
)
def test_topic_matches(sub_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(sub_filter, topic) is expected


@pytest.mark.parametrize(
    ("rule", "sub_filter", "expected"),
    [
        ("a/#", "a/b/#", True),
        ("a/+/c", "a/+/c", True),
        ("a/+/c", "a/#", False),
        ("a/b", "a/+", False),
        ("a/+", "a/b", True),
        ("#", "anything/#", True),
    ],
)
def test_filter_covers(rule: str, sub_filter: str, expected: bool) -> None:
    assert filter_covers(rule, sub_filter) is expected


def test_project_acl_grants_each_program_only_its_part() -> None:
    acl = AclFile.load(ROOT / "mosquitto" / "acl")
    soc = "saic/u/vehicles/V/drivetrain/soc"
    lock_cmd = "saic/u/vehicles/V/cmd/lock"
    assert acl.allows("gateway", "g", soc, Access.WRITE)
    assert acl.allows_subscribe("gateway", "g", "saic/u/vehicles/+/cmd/+")
    assert acl.allows("ingest", "i", soc, Access.READ)
    assert not acl.allows("ingest", "i", soc, Access.WRITE)
    assert not acl.allows("ingest", "i", lock_cmd, Access.WRITE)
    assert not acl.allows("ingest", "i", lock_cmd, Access.READ)
    assert acl.allows_subscribe("ingest", "i", "saic/+/vehicles/+/drivetrain/#")
    assert not acl.allows_subscribe("ingest", "i", "saic/#")
    assert acl.allows("api", "a", lock_cmd, Access.WRITE)
    assert not acl.allows("api", "a", soc, Access.WRITE)
    assert acl.allows("ingest", "i", "saic/_internal/ingest/status", Access.WRITE)
    assert not acl.allows("ingest", "i", "saic/_internal/gateway/status", Access.WRITE)
    assert acl.allows_subscribe("monitor", "m", "$SYS/#")
    assert not acl.allows(None, "anon", soc, Access.READ)
    assert not acl.allows("stranger", "s", soc, Access.READ)


def test_deny_wins_and_anonymous_section() -> None:
    acl = AclFile.parse("topic read public/#\nuser u\ntopic readwrite x/#\ntopic deny x/secret\npattern read dev/%u/%c")
    assert acl.allows(None, "c", "public/a", Access.READ)
    assert acl.allows("u", "c", "x/a", Access.WRITE)
    assert not acl.allows("u", "c", "x/secret", Access.READ)
    assert acl.allows("u", "c1", "dev/u/c1", Access.READ)
    assert not acl.allows("u", "c1", "dev/u/c2", Access.READ)


@pytest.mark.parametrize("text", ["user", "topic read", "frobnicate x"])
def test_syntax_errors_name_the_line(text: str) -> None:
    with pytest.raises(AclSyntaxError, match="acl:1"):
        AclFile.parse(text)
