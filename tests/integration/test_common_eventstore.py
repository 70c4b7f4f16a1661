"""The event store against a real nats-server: the append is the commit."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from schemas import subjects
from schemas.client import Bus
from schemas.envelope import Event
from services.common.eventstore import EventStore, WrongSequence


@pytest.fixture
async def store(nats_server):
    bus = await Bus.open(nats_server.url, "test-eventstore")
    store = EventStore(bus.js)
    await store.ensure_stream()
    yield store
    await bus.close()


def _event(aggregate_id: str, type_: str = "profile-updated", **payload) -> Event:
    return Event(type=type_, aggregate="profile", aggregate_id=aggregate_id, payload=payload)


async def test_append_returns_sequence_and_load_reads_back_in_order(store):
    agg = str(uuid.uuid4())
    seq = await store.append([_event(agg, n=1), _event(agg, n=2)], expected_seq=0)
    loaded = await store.load(subjects.event("profile", agg))
    assert [s.event.payload["n"] for s in loaded] == [1, 2]
    assert loaded[-1].seq == seq
    assert (await store.last(subjects.event("profile", agg))).seq == seq


async def test_stale_expected_sequence_is_rejected(store):
    agg = str(uuid.uuid4())
    first = await store.append([_event(agg, n=1)], expected_seq=0)
    await store.append([_event(agg, n=2)], expected_seq=first)
    with pytest.raises(WrongSequence):
        await store.append([_event(agg, n=3)], expected_seq=first)
    assert len(await store.load(subjects.event("profile", agg))) == 2


async def test_new_aggregate_created_twice_only_once(store):
    agg = str(uuid.uuid4())
    results = await asyncio.gather(
        store.append([_event(agg, n=1)], expected_seq=0),
        store.append([_event(agg, n=2)], expected_seq=0),
        return_exceptions=True,
    )
    assert sum(isinstance(r, WrongSequence) for r in results) == 1
    assert len(await store.load(subjects.event("profile", agg))) == 1


async def test_retried_publish_with_same_event_id_is_deduplicated(store):
    agg = str(uuid.uuid4())
    event = _event(agg, n=1)
    first = await store.append([event], expected_seq=None)
    again = await store.append([event], expected_seq=None)
    assert again == first
    assert len(await store.load(subjects.event("profile", agg))) == 1


async def test_missing_subject_has_no_last_event(store):
    assert await store.last(subjects.event("profile", str(uuid.uuid4()))) is None
    assert await store.load(subjects.event("profile", str(uuid.uuid4()))) == []
