"""The supervisor running the real services: kill -9 during writes, whole-stack restart."""

from __future__ import annotations

import asyncio
import http.client
import signal
import uuid
from collections import Counter

import pytest
from stack import Stack, pid_alive, wait_for

from schemas import subjects
from schemas.client import Bus
from schemas.events import PROFILE_CREATED
from services.common.eventstore import EventStore


def create_profile(stack: Stack, name: str) -> int | None:
    """POST a profile; the status code, or None if the connection itself failed."""
    try:
        code, _, _ = stack.request("POST", "/1.0/profiles", {"name": name, "config": {}})
    except (OSError, http.client.HTTPException):
        return None
    return code


def profile_names(stack: Stack) -> list[str]:
    code, _, body = stack.request("GET", "/1.0/profiles")
    assert code == 200, body
    return [url.rsplit("/", 1)[-1] for url in body["metadata"]]


async def created_events(nats_url: str) -> Counter[str]:
    """How many profile-created events the log holds per profile name."""
    bus = await Bus.open(nats_url, "test-supervisor-stack")
    try:
        store = EventStore(bus.js)
        seen: Counter[str] = Counter()
        async for stored in store.replay(subjects.aggregate_events("profile")):
            if stored.event.type == PROFILE_CREATED:
                seen[stored.event.payload["name"]] += 1
        return seen
    finally:
        await bus.close()


@pytest.mark.parametrize(
    ("victim", "replicas"),
    [("instance", None), ("gateway", None), ("instance", {"instance": 2}), ("nats", None)],
)
def test_kill_9_during_profile_writes_loses_and_duplicates_nothing(
    warren_factory, victim, replicas
):
    stack = warren_factory(replicas=replicas)
    prefix = f"k{uuid.uuid4().hex[:6]}"
    acknowledged: list[str] = []
    attempted: list[str] = []

    def write_one() -> bool:
        name = f"{prefix}-{len(attempted)}"
        attempted.append(name)
        if create_profile(stack, name) in (200, 201):
            acknowledged.append(name)
            return True
        return False

    def write(count: int) -> None:
        for _ in range(count):
            write_one()

    write(10)
    old = stack.kill(victim, signal.SIGKILL)
    write(10)  # some of these may fail while the victim is down
    new = stack.wait_restarted(victim, old)
    assert new != old and not pid_alive(old)
    # Clients of a restarted nats-server reconnect on their own schedule: wait for one success.
    wait_for(write_one, 60, "a write to succeed after the restart", interval=0.1)
    before = len(acknowledged)
    write(10)
    assert len(acknowledged) - before == 10, "writes must succeed again after the restart"

    listed = set(profile_names(stack))
    assert set(acknowledged) <= listed
    events = asyncio.run(created_events(stack.nats_url))
    assert all(events[name] == 1 for name in acknowledged)
    assert all(count == 1 for name, count in events.items() if name.startswith(prefix))
    assert {n for n in events if n.startswith(prefix)} == {
        n for n in listed if n.startswith(prefix)
    }
    assert set(events) - set(attempted) <= {"default"}


def test_whole_stack_restart_restores_state_from_the_log(warren: Stack):
    name = f"r{uuid.uuid4().hex[:6]}"
    body = {"name": name, "description": "kept", "config": {"limits.cpu": "2"}}
    assert warren.request("POST", "/1.0/profiles", body)[0] in (200, 201)
    before = warren.request("GET", f"/1.0/profiles/{name}")
    old_pids = warren.all_pids()

    warren.restart()

    assert not any(pid_alive(pid) for pid in old_pids)
    after = warren.request("GET", f"/1.0/profiles/{name}")
    assert after[0] == 200
    assert after[2]["metadata"] == before[2]["metadata"]
    assert after[1]["etag"] == before[1]["etag"]
