"""The wire contract: subjects, encoding, errors, upcasting."""

from __future__ import annotations

import pytest

from schemas import codec, events, subjects
from schemas.envelope import Event
from schemas.errors import Conflict, NotFound, WarrenError, from_code
from schemas.messages import Reply


def test_subject_tokens_refuse_wildcards_and_dots():
    assert subjects.event("profile", "abc-1") == "events.profile.abc-1"
    for bad in ("a.b", "*", ">", "a b", ""):
        with pytest.raises(ValueError):
            subjects.event("profile", bad)


def test_event_round_trips_through_msgpack():
    event = Event(type="profile-created", aggregate="profile", aggregate_id="x", payload={"a": 1})
    back = codec.decode(Event, codec.encode(event))
    assert back == event
    assert back.subject == "events.profile.x"


def test_reply_carries_errors_back_as_their_class():
    with pytest.raises(NotFound, match="nope"):
        Reply.failure(NotFound("nope")).unwrap()
    assert isinstance(from_code(409, "taken"), Conflict)
    assert from_code(500, "boom").code == 500
    assert isinstance(from_code(418, "odd"), WarrenError)


def test_upcasting_lifts_old_payloads_step_by_step():
    events.register("test-thing-happened", version=3)

    @events.upcaster("test-thing-happened", 1)
    def _v1(payload):
        payload["colour"] = payload.pop("color")  # mutates: upcast must hand it a copy
        return payload

    @events.upcaster("test-thing-happened", 2)
    def _v2(payload):
        return {**payload, "size": 0}

    old = Event(
        type="test-thing-happened",
        schema_version=1,
        aggregate="thing",
        aggregate_id="t",
        payload={"color": "red"},
    )
    new = events.upcast(old)
    assert new.schema_version == 3
    assert new.payload == {"colour": "red", "size": 0}
    assert old.payload == {"color": "red"}  # the stored event is never edited
