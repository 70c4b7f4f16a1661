"""Fan-out of LXD events to ``/1.0/events`` websocket listeners, with their filters.

Each event is encoded once; each listener has a bounded queue, and a listener too slow to
keep up is dropped rather than allowed to grow the gateway's memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.responses import dumps
from schemas.lxd.event import Event, Logging

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

    def subscribe(self, types: Iterable[str], project: str | None) -> Listener:
        listener = Listener(frozenset(types), project)
        self._listeners.add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def wants(self, kind: str) -> bool:
        """Whether anyone listens to ``kind`` (saves decoding events nobody reads)."""
        return any(kind in listener.types for listener in self._listeners)

    def publish(self, event: Event, also_projects: Iterable[str] = ()) -> int:
        """Send one event to every matching listener; return how many got it."""
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
                self._listeners.discard(listener)
                listener.queue.get_nowait()
                listener.queue.put_nowait(None)
        return len(targets)

    def __len__(self) -> int:
        return len(self._listeners)


def timestamp(when: datetime | None = None) -> str:
    """RFC 3339 in UTC with a ``Z``, as LXD writes event timestamps."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: Python level names -> the logrus names LXD (and ``lxc monitor --loglevel``) use.
_LEVELS = {"WARNING": "warning", "CRITICAL": "fatal"}


class HubLogHandler(logging.Handler):
    """Sends the gateway's own log records (info and up) as LXD ``logging`` events."""

    def __init__(self, hub: EventHub, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.INFO)
        self.hub = hub
        self.loop = loop
        self._thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if not self.hub.wants("logging"):
            return
        try:
            level = _LEVELS.get(record.levelname, record.levelname.lower())
            context = {"logger": record.name}
            event = Event(
                type="logging",
                timestamp=timestamp(datetime.fromtimestamp(record.created, UTC)),
                metadata=Logging(
                    message=record.getMessage(), level=level, context=context
                ).model_dump(),
            )
        except Exception:
            self.handleError(record)
            return
        if threading.get_ident() == self._thread:
            self.hub.publish(event)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.hub.publish, event)
