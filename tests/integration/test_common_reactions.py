"""Reactions ack only after their effect is recorded, and redelivery is harmless."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from schemas import subjects
from schemas.client import Bus
from schemas.envelope import Event, StoredEvent
from services.common.eventstore import EventStore
from services.common.reactions import Reaction, ReactionRunner, effect_event_id


class Echo(Reaction):
    """For each ``ping-requested`` writes one ``pong-recorded`` event; fails the first try
    of each trigger when ``flaky`` is set, as a crashed effect would."""

    name = "echo"

    def __init__(self, store: EventStore, kind: str, flaky: bool = False) -> None:
        self.store = store
        self.kind = kind
        self.filter_subject = subjects.aggregate_events(kind)
        self.flaky = flaky
        self.attempts: dict[str, int] = {}
        self.effects = 0

    def triggers(self, stored: StoredEvent) -> bool:
        return stored.event.type == "ping-requested"

    async def is_done(self, stored: StoredEvent) -> bool:
        events = await self.store.load(subjects.event(self.kind, stored.event.aggregate_id))
        return any(s.event.causation_id == stored.event.event_id for s in events)

    async def react(self, stored: StoredEvent) -> None:
        key = stored.event.event_id
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if self.flaky and self.attempts[key] == 1:
            raise RuntimeError("host effect failed half-way")
        self.effects += 1
        pong = Event(
            event_id=effect_event_id(key, self.name),
            type="pong-recorded",
            aggregate=self.kind,
            aggregate_id=stored.event.aggregate_id,
            causation_id=key,
        )
        await self.store.append([pong], expected_seq=None)


@pytest.fixture
async def store(nats_server):
    bus = await Bus.open(nats_server.url, "test-reactions")
    store = EventStore(bus.js)
    await store.ensure_stream()
    yield store
    await bus.close()


async def _pongs(store: EventStore, kind: str, agg: str) -> int:
    events = await store.load(subjects.event(kind, agg))
    return sum(s.event.type == "pong-recorded" for s in events)


async def _until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


async def test_failed_effect_is_retried_and_recorded_once(store):
    kind = f"r{uuid.uuid4().hex[:8]}"
    reaction = Echo(store, kind, flaky=True)
    runner = ReactionRunner(store, reaction, durable_prefix=kind)
    await runner.start()
    agg = "a1"
    await store.append(
        [Event(type="ping-requested", aggregate=kind, aggregate_id=agg)], expected_seq=None
    )

    async def recorded() -> bool:
        return await _pongs(store, kind, agg) == 1

    await _until(recorded)
    await runner.stop()
    assert reaction.effects == 1
    assert max(reaction.attempts.values()) == 2  # the failure was retried, not dropped


async def test_replica_taking_over_skips_work_already_recorded(store):
    kind = f"r{uuid.uuid4().hex[:8]}"
    first = Echo(store, kind)
    runner = ReactionRunner(store, first, durable_prefix=kind)
    await runner.start()
    agg = "a1"
    await store.append(
        [Event(type="ping-requested", aggregate=kind, aggregate_id=agg)], expected_seq=None
    )

    async def recorded() -> bool:
        return await _pongs(store, kind, agg) == 1

    await _until(recorded)
    await runner.stop()

    # A second consumer on the same durable, as after a crash before the ack: deliveries of
    # already-handled triggers must not repeat the effect.
    second = Echo(store, kind)
    takeover = ReactionRunner(store, second, durable_prefix=kind)
    for stored in await store.load(subjects.event(kind, agg)):
        if second.triggers(stored):
            assert await second.is_done(stored)
    await takeover.start()
    await asyncio.sleep(0.5)
    await takeover.stop()
    assert second.effects == 0
    assert await _pongs(store, kind, agg) == 1
