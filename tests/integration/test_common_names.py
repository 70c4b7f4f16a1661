"""Unique names enforced by the log: of two concurrent claimants exactly one wins."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from schemas.client import Bus
from schemas.errors import Conflict
from services.common import names
from services.common.eventstore import EventStore
from services.common.names import NameRegistry

META: dict[str, str | None] = {"requestor": "test"}


@pytest.fixture
async def registry(nats_server):
    bus = await Bus.open(nats_server.url, "test-names")
    store = EventStore(bus.js)
    await store.ensure_stream()
    yield NameRegistry(store, f"thing{uuid.uuid4().hex[:6]}")
    await bus.close()


def _nobody_has(owner: str, name: str) -> bool:
    return False


async def test_concurrent_claims_of_one_name_have_one_winner(registry):
    owners = [str(uuid.uuid4()) for _ in range(5)]
    results = await asyncio.gather(
        *(registry.claim("p", "web", o, _nobody_has, META) for o in owners),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)


async def test_name_is_free_again_after_release_and_scopes_are_separate(registry):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await registry.claim("p", "web", a, _nobody_has, META)
    await registry.claim("q", "web", b, _nobody_has, META)  # another scope
    with pytest.raises(Conflict, match="already exists"):
        await registry.claim("p", "web", b, _nobody_has, META)
    await registry.release("p", "web", a, META)
    await registry.claim("p", "web", b, _nobody_has, META)


async def test_claim_left_by_a_crash_is_not_honoured_forever(registry, monkeypatch):
    crashed, later = str(uuid.uuid4()), str(uuid.uuid4())
    await registry.claim("p", "db", crashed, _nobody_has, META)
    with pytest.raises(Conflict):  # still in flight as far as anyone can tell
        await registry.claim("p", "db", later, _nobody_has, META)
    monkeypatch.setattr(names, "IN_FLIGHT", timedelta(0))
    with pytest.raises(Conflict):  # the holder really carries the name
        await registry.claim("p", "db", later, lambda owner, name: owner == crashed, META)
    await registry.claim("p", "db", later, _nobody_has, META)
