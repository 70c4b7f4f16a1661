"""Endpoint groups on a real nats-server: by default a subject's requests are handled one at a
time; ``concurrent=True`` handles each in its own task, and stopping the group finishes (or,
after the grace period, cancels) what is in flight."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from schemas.client import Bus
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup

pytestmark = pytest.mark.timeout(60)


class Ask(BaseModel):
    n: int


class Gate:
    """A handler whose call with n == 0 waits for ``release``; the others answer at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: list[int] = []
        self.cancelled = False
        self.first_started = asyncio.Event()

    async def handler(self, body: Ask, meta: RequestMeta) -> tuple[Any, int]:
        self.started.append(body.n)
        if body.n == 0:
            self.first_started.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        return body.n * 10, 0


@pytest.fixture
async def bus(nats_server):
    bus = await Bus.open(nats_server.url, "endpoints-test")
    yield bus
    await bus.close()


async def _group(bus: Bus, gate: Gate, concurrent: bool) -> tuple[EndpointGroup, str]:
    subject = f"test.endpoints.{uuid.uuid4().hex}"
    group = EndpointGroup(f"q-{uuid.uuid4().hex}")
    if concurrent:
        group.add(subject, Ask, gate.handler, concurrent=True)
    else:
        group.add(subject, Ask, gate.handler)
    await group.start(bus.nc)
    return group, subject


async def test_default_endpoint_handles_one_message_at_a_time(bus):
    gate = Gate()
    group, subject = await _group(bus, gate, concurrent=False)
    try:
        first = asyncio.create_task(bus.request(subject, {"n": 0}))
        await gate.first_started.wait()
        second = asyncio.create_task(bus.request(subject, {"n": 1}))
        await asyncio.sleep(0.3)  # the second message is waiting behind the first
        assert gate.started == [0] and not second.done()
        gate.release.set()
        assert await first == 0 and await second == 10
        assert gate.started == [0, 1]
    finally:
        await group.stop()


async def test_concurrent_endpoint_answers_while_an_earlier_request_waits(bus):
    gate = Gate()
    group, subject = await _group(bus, gate, concurrent=True)
    try:
        first = asyncio.create_task(bus.request(subject, {"n": 0}))
        await gate.first_started.wait()
        others = await asyncio.gather(*(bus.request(subject, {"n": n}) for n in range(1, 6)))
        assert others == [10, 20, 30, 40, 50] and not first.done()
        gate.release.set()
        assert await first == 0
    finally:
        gate.release.set()
        await group.stop()


async def test_stop_finishes_concurrent_requests_in_flight(bus):
    gate = Gate()
    group, subject = await _group(bus, gate, concurrent=True)
    first = asyncio.create_task(bus.request(subject, {"n": 0}))
    await gate.first_started.wait()
    stopping = asyncio.create_task(group.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done()  # waits for the request in flight
    gate.release.set()
    await stopping
    assert await first == 0 and not gate.cancelled


async def test_stop_cancels_concurrent_requests_after_the_grace_period(bus):
    gate = Gate()
    group, subject = await _group(bus, gate, concurrent=True)
    first = asyncio.create_task(bus.request(subject, {"n": 0}, timeout=5))
    await gate.first_started.wait()
    await group.stop(grace=0.2)
    assert gate.cancelled
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
