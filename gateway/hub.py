"""Fan-out of LXD events to ``/1.0/events`` websocket listeners, with their filters.

Each event is encoded once; each listener has a bounded queue, and a listener too slow to
keep up is dropped rather than allowed to grow the gateway's memory. The hub counts the
listeners of each event type, so ``wants`` is one lookup: producers ask it before building
an event, and nothing is built or formatted for a type nobody listens to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.responses import dumps
from schemas.lxd.event import Event

QUEUE_LIMIT = 4096


@dataclass(eq=False)
class Listener:
    """One websocket: the event types it wants and its project (None: all projects)."""

    types: frozenset[str]
    project: str | None
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))

    def matches(self, kind: str, projects: Iterable[str]) -> bool:
        """LXD's rule: events of no project reach everyone, others only their project."""
        if kind not in self.types:
            return False
        if self.project is None:
            return True
        return any(p in ("", self.project) for p in projects)


class EventHub:
    """Listeners of the events websocket and the fan-out to them."""

    def __init__(self) -> None:
        self._listeners: set[Listener] = set()
        self._wanted: dict[str, int] = {}  # event type -> how many listeners want it

    def subscribe(self, types: Iterable[str], project: str | None) -> Listener:
        listener = Listener(frozenset(types), project)
        self._listeners.add(listener)
        for kind in listener.types:
            self._wanted[kind] = self._wanted.get(kind, 0) + 1
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        if listener not in self._listeners:
            return  # already dropped for being too slow
        self._listeners.discard(listener)
        for kind in listener.types:
            left = self._wanted[kind] - 1
            if left:
                self._wanted[kind] = left
            else:
                del self._wanted[kind]

    def wants(self, kind: str) -> bool:
        """Whether anyone listens to ``kind`` (saves building events nobody reads)."""
        return kind in self._wanted

    def publish(self, event: Event, also_projects: Iterable[str] = ()) -> int:
        """Send one event to every matching listener; return how many got it."""
        if event.type not in self._wanted:
            return 0
        projects = (event.project, *also_projects)
        targets = [lst for lst in self._listeners if lst.matches(event.type, projects)]
        if not targets:
            return 0
        text = dumps(event.to_lxd())
        for listener in targets:
            try:
                listener.queue.put_nowait(text)
            except asyncio.QueueFull:
                # A listener that cannot keep up is cut off (its websocket closes).
                self.unsubscribe(listener)
                listener.queue.get_nowait()
                listener.queue.put_nowait(None)
        return len(targets)

    def __len__(self) -> int:
        return len(self._listeners)


def timestamp(when: datetime | None = None) -> str:
    """RFC 3339 in UTC with a ``Z``, as LXD writes event timestamps."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
