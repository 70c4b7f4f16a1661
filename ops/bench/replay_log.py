"""A realistic catalog log for the replay benchmark, appended the way services append.

The log holds what the instance service writes: the ``default`` project (created by the
service's own start-up code when it is present), then for each profile a name claim and a
``profile-created``, followed by ``profile-updated`` events round-robin over the profiles.
Every append carries ``Nats-Msg-Id`` and the expected last subject sequence.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from schemas import events
from schemas.envelope import Event
from services.common.eventstore import EventStore
from services.common.names import NAME_AGGREGATE, name_key

#: Concurrent appends per round; at most one per profile, so each profile stays in order.
BATCH = 1000
_FALLBACK_PROJECT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "warren-bench/project/default"))


def default_project_id() -> str:
    """The id of the ``default`` project, as the instance service spells it if present."""
    try:
        from services.instance.catalog.meta import default_project_id as real
    except ImportError:
        return _FALLBACK_PROJECT_ID
    return real()


async def prepare(store: EventStore) -> None:
    """What a fresh Warren writes first: the ``default`` project and profile."""
    try:
        from services.instance.catalog.defaults import ensure_default_project
    except ImportError:
        return
    await ensure_default_project(store)


def profile_event(profile_id: str, index: int, version: int, project_id: str) -> Event:
    """The ``version``-th event of profile number ``index``: created, then updated."""
    payload = {
        "name": f"profile-{index}",
        "project_id": project_id,
        "description": f"profile {index}, revision {version}",
        "config": {
            "limits.cpu": str(1 + version % 4),
            "limits.memory": f"{256 * (1 + version % 8)}MiB",
            "user.revision": str(version),
        },
        "devices": {
            "root": {"type": "disk", "path": "/", "pool": "default"},
            "eth0": {"type": "nic", "network": "lxdbr0", "name": "eth0"},
        },
    }
    return Event(
        type=events.PROFILE_CREATED if version == 1 else events.PROFILE_UPDATED,
        aggregate="profile",
        aggregate_id=profile_id,
        version=version,
        project="default",
        requestor="bench",
        node="bench",
        payload=payload,
    )


def name_claim(profile_id: str, index: int, project_id: str) -> Event:
    """The name claim a profile create appends before the profile's first event."""
    name = f"profile-{index}"
    return Event(
        type=events.NAME_CLAIMED,
        aggregate=NAME_AGGREGATE,
        aggregate_id=name_key("profile", project_id, name),
        version=1,
        requestor="bench",
        node="bench",
        payload={"kind": "profile", "scope": project_id, "name": name, "owner": profile_id},
    )


class LogWriter:
    """Appends profile events, keeping each profile's version and last sequence."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.project_id = default_project_id()
        self.ids: list[str] = []
        self.last_seq: dict[str, int] = {}
        self.version: dict[str, int] = {}

    async def _append(self, index: int) -> None:
        pid = self.ids[index]
        self.version[pid] += 1
        version = self.version[pid]
        if version == 1:
            claim = name_claim(pid, index, self.project_id)
            await self.store.append([claim], expected_seq=0)
        event = profile_event(pid, index, version, self.project_id)
        self.last_seq[pid] = await self.store.append([event], expected_seq=self.last_seq[pid])

    def add_profiles(self, count: int) -> range:
        start = len(self.ids)
        for _ in range(count):
            pid = str(uuid.uuid4())
            self.ids.append(pid)
            self.last_seq[pid] = 0
            self.version[pid] = 0
        return range(start, start + count)

    async def fill(self, total: int, profiles: int) -> dict[str, Any]:
        """``total`` profile events round-robin over ``profiles`` new profiles."""
        indexes = self.add_profiles(profiles)
        began = time.perf_counter()
        done = 0
        while done < total:
            size = min(profiles, BATCH, total - done)
            batch = [indexes[(done + i) % profiles] for i in range(size)]
            await asyncio.gather(*(self._append(i) for i in batch))
            done += size
        elapsed = time.perf_counter() - began
        return {"events": total, "profiles": profiles, "seconds": elapsed, "rate": total / elapsed}

    async def tail(self, count: int) -> int:
        """``count`` more events after a snapshot: updates of existing profiles."""
        for i in range(count):
            await self._append(i % len(self.ids))
        return count
