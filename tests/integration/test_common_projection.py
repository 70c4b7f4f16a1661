"""Projections rebuild from the log, follow it live, and resume from snapshots."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from schemas.client import Bus
from schemas.envelope import Event, StoredEvent
from services.common.eventstore import EventStore
from services.common.projection import Projection, ProjectionRunner


class Counter(Projection):
    """Counts events per aggregate id for one aggregate type chosen per test."""

    name = "counter"

    def __init__(self, aggregate: str) -> None:
        self.aggregates = frozenset({aggregate})
        super().__init__()
        self.counts: dict[str, int] = {}
        self.applied_events = 0

    def apply(self, stored: StoredEvent) -> None:
        self.applied_events += 1
        key = stored.event.aggregate_id
        self.counts[key] = self.counts.get(key, 0) + 1

    def dump(self) -> Any:
        return self.counts

    def load(self, state: Any) -> None:
        self.counts = dict(state or {})


@pytest.fixture
async def store(nats_server):
    bus = await Bus.open(nats_server.url, "test-projection")
    store = EventStore(bus.js)
    await store.ensure_stream()
    yield store
    await bus.close()


def _events(aggregate: str, ids: list[str]) -> list[Event]:
    return [Event(type="x-happened", aggregate=aggregate, aggregate_id=i) for i in ids]


async def test_replays_history_then_follows_live_and_skips_other_aggregates(store, tmp_path):
    kind = f"k{uuid.uuid4().hex[:8]}"
    for event in _events(kind, ["a", "b", "a"]):
        await store.append([event], expected_seq=None)
    await store.append(_events("otherkind", ["z"]), expected_seq=None)

    projection = Counter(kind)
    runner = ProjectionRunner(store, projection, tmp_path)
    await runner.start()
    assert projection.counts == {"a": 2, "b": 1}

    await store.append(_events(kind, ["b"]), expected_seq=None)
    await runner.barrier()
    assert projection.counts == {"a": 2, "b": 2}
    await runner.stop()


async def test_resumes_from_snapshot_without_reapplying_covered_events(store, tmp_path):
    kind = f"k{uuid.uuid4().hex[:8]}"
    for event in _events(kind, ["a"] * 5):
        await store.append([event], expected_seq=None)
    first = Counter(kind)
    runner = ProjectionRunner(store, first, tmp_path)
    await runner.start()
    await runner.stop()  # writes the snapshot

    await store.append(_events(kind, ["a"]), expected_seq=None)
    second = Counter(kind)
    runner = ProjectionRunner(store, second, tmp_path)
    await runner.start()
    assert second.counts == {"a": 6}
    assert second.applied_events == 1  # only the event after the snapshot was folded
    await runner.stop()


async def test_corrupt_snapshot_falls_back_to_full_replay(store, tmp_path):
    kind = f"k{uuid.uuid4().hex[:8]}"
    for event in _events(kind, ["a", "a"]):
        await store.append([event], expected_seq=None)
    (tmp_path / "counter.msgpack").write_bytes(b"\xc1 not msgpack")
    projection = Counter(kind)
    runner = ProjectionRunner(store, projection, tmp_path)
    await runner.start()
    assert projection.counts == {"a": 2}
    await runner.stop()


async def test_a_waiter_is_woken_by_a_restored_snapshot(store, tmp_path):
    # A waiter that starts before the runner must not sleep until the next event when the
    # snapshot alone brings the projection up to date.
    kind = f"k{uuid.uuid4().hex[:8]}"
    for event in _events(kind, ["a", "b"]):
        await store.append([event], expected_seq=None)
    first = ProjectionRunner(store, Counter(kind), tmp_path)
    await first.start()
    await first.stop()  # writes the snapshot
    target = await store.last_seq()

    projection = Counter(kind)
    waiter = asyncio.create_task(projection.wait_for(target, timeout=30))
    await asyncio.sleep(0)
    runner = ProjectionRunner(store, projection, tmp_path)
    await runner.start()
    await asyncio.wait_for(waiter, 5)
    assert projection.counts == {"a": 1, "b": 1}
    await runner.stop()
