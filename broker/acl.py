"""Mosquitto's acl_file format and semantics, for enforcing the same ACL file in amqtt.

Rules: `user <name>` opens a user's section; `topic [read|write|readwrite|deny] <filter>` grants
within it (before any `user` line: anonymous clients); `pattern ...` applies to every user with
`%u` (username) and `%c` (client id) substituted. A deny rule that matches wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Flag, auto
from pathlib import Path


class Access(Flag):
    NONE = 0
    READ = auto()
    WRITE = auto()
    READWRITE = READ | WRITE


_ACCESS_WORDS = {"read": Access.READ, "write": Access.WRITE, "readwrite": Access.READWRITE, "deny": Access.NONE}


class AclSyntaxError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Rule:
    access: Access
    filter: str

    @property
    def is_deny(self) -> bool:
        return self.access == Access.NONE


@dataclass
class AclFile:
    anonymous: list[Rule] = field(default_factory=list)
    users: dict[str, list[Rule]] = field(default_factory=dict)
    patterns: list[Rule] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, source: str = "acl") -> AclFile:
        acl = cls()
        current: list[Rule] = acl.anonymous
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            rest = rest.strip()
            if word == "user":
                if not rest:
                    raise AclSyntaxError(f"{source}:{number}: 'user' needs a name")
                current = acl.users.setdefault(rest, [])
            elif word in ("topic", "pattern"):
                rule = _parse_rule(rest, f"{source}:{number}")
                (acl.patterns if word == "pattern" else current).append(rule)
            else:
                raise AclSyntaxError(f"{source}:{number}: unknown directive {word!r}")
        return acl

    @classmethod
    def load(cls, path: Path) -> AclFile:
        return cls.parse(path.read_text(encoding="utf-8"), str(path))

    def _rules_for(self, username: str | None, client_id: str) -> list[Rule]:
        if username is None:
            return self.anonymous
        own = self.users.get(username, [])
        subst = [Rule(r.access, r.filter.replace("%u", username).replace("%c", client_id)) for r in self.patterns]
        return own + subst

    def allows(self, username: str | None, client_id: str, topic: str, access: Access) -> bool:
        """May this client publish (WRITE) to or receive (READ) a message on a concrete topic?"""
        rules = self._rules_for(username, client_id)
        if any(r.is_deny and topic_matches(r.filter, topic) for r in rules):
            return False
        return any(access in r.access and not r.is_deny and topic_matches(r.filter, topic) for r in rules)

    def allows_subscribe(self, username: str | None, client_id: str, sub_filter: str) -> bool:
        """A subscription is granted when a read rule covers every topic the filter can match."""
        rules = self._rules_for(username, client_id)
        if any(r.is_deny and filter_covers(r.filter, sub_filter) for r in rules):
            return False
        return any(Access.READ in r.access and filter_covers(r.filter, sub_filter) for r in rules)


def _parse_rule(rest: str, where: str) -> Rule:
    first, _, remainder = rest.partition(" ")
    if first in _ACCESS_WORDS:
        access, topic = _ACCESS_WORDS[first], remainder.strip()
    else:  # Mosquitto: no access word means readwrite.
        access, topic = Access.READWRITE, rest
    if not topic:
        raise AclSyntaxError(f"{where}: rule without a topic")
    return Rule(access, topic)


def topic_matches(sub_filter: str, topic: str) -> bool:
    """MQTT topic matching, including the rule that `+`/`#` at the start skip `$` topics."""
    if topic.startswith("$") and sub_filter[:1] in ("+", "#"):
        return False
    f_levels = sub_filter.split("/")
    t_levels = topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return True
        if i >= len(t_levels):
            return False
        if level not in ("+", t_levels[i]):
            return False
    return len(f_levels) == len(t_levels)


def filter_covers(rule: str, sub_filter: str) -> bool:
    """Does every topic matched by `sub_filter` also match `rule`?"""
    r_levels = rule.split("/")
    s_levels = sub_filter.split("/")
    for i, level in enumerate(r_levels):
        if level == "#":
            return True
        if i >= len(s_levels):
            return False
        sub_level = s_levels[i]
        if sub_level == "#":
            return False
        if level == "+":
            continue
        if level != sub_level:
            return False
    return len(r_levels) == len(s_levels)
