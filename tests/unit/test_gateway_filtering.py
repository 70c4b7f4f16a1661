"""LXD's API filtering (``?filter=``) as the gateway parses and applies it."""

from __future__ import annotations

import pytest

from gateway.routes.instances import Clause, matches, parse_filter, value_of
from schemas.errors import BadRequest

WEB = {
    "name": "web1",
    "status": "Running",
    "type": "container",
    "ephemeral": False,
    "profiles": ["default", "web"],
    "config": {"user.role": "front", "image.os": "Debian"},
    "devices": {"eth0": {"type": "nic", "network": "lxdbr0"}},
    "state": {"status": "Running", "pid": 42},
}


def test_parse_simple_and_compound_clauses() -> None:
    assert parse_filter("name eq web1") == [Clause("and", False, "name", "eq", "web1")]
    assert parse_filter("not status ne Running or config.user.role eq front") == [
        Clause("and", True, "status", "ne", "Running"),
        Clause("or", False, "config.user.role", "eq", "front"),
    ]
    assert parse_filter("  ") == [] and parse_filter("") == []
    # Keywords and operators in any case.
    assert parse_filter("NOT name EQ a AND name Ne b")[1] == Clause("and", False, "name", "ne", "b")


def test_parse_quoted_values() -> None:
    assert parse_filter('description eq "a b  c"')[0].value == "a b c"
    assert parse_filter('name eq "web1"')[0].value == "web1"
    assert parse_filter('name eq " x" and name eq y')[0].value == " x"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not", "incomplete not clause"),
        ("name", "no operator"),
        ("name eq", "no value"),
        ("name like x", "unknown operator"),
        ("name eq a xor name eq b", "not and/or"),
        ("name eq a and", "unterminated compound"),
        ('name eq "open quote', "unterminated quote"),
    ],
)
def test_parse_errors_are_400(text: str, why: str) -> None:
    with pytest.raises(BadRequest, match=why):
        parse_filter(text)


def test_value_of_dotted_fields() -> None:
    assert value_of(WEB, "name") == "web1"
    assert value_of(WEB, "config.user.role") == "front"  # map keys hold dots
    assert value_of(WEB, "config.user.nothing") == ""  # missing config keys read as ""
    assert value_of(WEB, "devices.eth0.type") == "nic"
    assert value_of(WEB, "state.pid") == 42
    assert value_of(WEB, "nothing") is None and value_of(WEB, "name.deeper") is None


def names(text: str, objects: list[dict]) -> list[str]:
    clauses = parse_filter(text)
    return [o["name"] for o in objects if matches(o, clauses)]


def test_matching_follows_lxd() -> None:
    db = {**WEB, "name": "db1", "status": "Stopped", "config": {"user.role": "back"}}
    both = [WEB, db]
    assert names("status eq running", both) == ["web1"]  # case-insensitive
    assert names("name eq .*1", both) == ["web1", "db1"]  # a regular expression...
    assert names("name eq web", both) == []  # ...anchored at both ends
    assert names("name eq ^w", both) == ["web1"]  # unless it anchors itself
    assert names("name eq web[", both) == []  # not a regexp: plain comparison
    assert names("config.user.role ne front", both) == ["db1"]
    assert names("ephemeral eq false", both) == ["web1", "db1"]
    assert names("state.pid eq 42", both) == ["web1", "db1"]
    assert names("profiles eq web", both) == ["web1", "db1"]
    assert names("nothing eq x", both) == [] and names("not nothing eq x", both) == ["web1", "db1"]


def test_clauses_fold_left_to_right_without_precedence() -> None:
    a, b, c = ({"name": n} for n in "abc")
    objects = [a, b, c]
    # ((name=a or name=b) and name=b): LXD has no precedence, so this is only b.
    assert names("name eq a or name eq b and name eq b", objects) == ["b"]
    assert names("name eq a and name eq b or name eq c", objects) == ["c"]
    assert names("not name eq a and not name eq b", objects) == ["c"]
