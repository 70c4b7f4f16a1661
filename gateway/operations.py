"""The operations read model: every LXD operation recorded in the log, folded by id.

Services record operations as events on ``events.operation.<id>`` (``operation-created`` /
``operation-updated``, payload = the LXD operation object). Any gateway replica replays the
same events, so all replicas list the same operations.

Like LXD, a finished operation stays visible for :data:`RETENTION_S` (LXD 5.0 removes it 5 s
after it ends, ``lxd/operations/operations.go``), long enough for the ``GET`` or ``/wait``
clients send right after it ends; a ``/wait`` already waiting gets the final state whenever
it comes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from schemas import events as event_types
from schemas.envelope import Event
from schemas.lxd.operation import is_final

#: Event types whose payload is the operation object (others on the subject are ignored).
OPERATION_STATES = frozenset({event_types.OPERATION_CREATED, event_types.OPERATION_UPDATED})
#: How long a finished operation stays listed, in seconds: LXD's 5.
RETENTION_S = 5.0
#: Resources of an operation on projects themselves (a project rename).
PROJECT_RESOURCES = frozenset({"projects"})


@dataclass
class Record:
    """One operation: its LXD object and the project it belongs to ("" for none)."""

    op: dict[str, Any]
    project: str
    finished_at: float | None = None  # epoch seconds, from the log, so replicas agree
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def final(self) -> bool:
        return is_final(int(self.op.get("status_code", 0)))


def project_of(event: Event) -> str:
    """The project an operation belongs to, as LXD has it.

    LXD creates the operations on projects themselves (``Renaming project``) in no project:
    they are listed in every project and their events carry no ``project``. Every other
    operation belongs to the project it was started in.
    """
    resources = event.payload.get("resources")
    if isinstance(resources, dict) and resources and set(resources) <= PROJECT_RESOURCES:
        return ""
    return event.project


class OperationsView:
    """Operations by id, with waiters for ``/wait`` and a retention window for finished ones."""

    def __init__(self, retention_s: float = RETENTION_S) -> None:
        self.retention_s = retention_s
        self._ops: dict[str, Record] = {}
        # Finished operations in the order they ended: pruning pops from the front only.
        self._finished: deque[tuple[float, str]] = deque()

    def apply(self, event: Event) -> Record | None:
        """Fold one operation event; return the operation's record as it now is."""
        if event.type not in OPERATION_STATES:
            return None
        payload = event.payload
        op_id = payload.get("id")
        if not isinstance(op_id, str) or not op_id:
            return None
        record = self._ops.get(op_id)
        if record is None:
            record = self._ops[op_id] = Record(op={}, project=project_of(event))
        # Payloads carry the whole object; merging also tolerates partial updates.
        record.op.update(payload)
        record.op.setdefault("location", "none")
        if record.final and record.finished_at is None:
            # The time of the final event, from the log: every replica forgets it together.
            record.finished_at = event.occurred_at.timestamp()
            self._finished.append((record.finished_at, op_id))
        record.changed.set()
        record.changed = asyncio.Event()
        self._prune(time.time())
        return record

    def _visible(self, record: Record, now: float) -> bool:
        return record.finished_at is None or now - record.finished_at < self.retention_s

    def _prune(self, now: float) -> None:
        finished = self._finished
        while finished and now - finished[0][0] >= self.retention_s:
            _, op_id = finished.popleft()
            self._ops.pop(op_id, None)

    def prune(self) -> None:
        """Forget finished operations older than the retention window."""
        self._prune(time.time())

    def get(self, op_id: str) -> Record | None:
        record = self._ops.get(op_id)
        if record is None or not self._visible(record, time.time()):
            return None
        return record

    def list(self, project: str | None) -> list[Record]:
        """Operations of one project (plus those of no project), or of all when ``None``."""
        now = time.time()
        self._prune(now)
        return [
            r
            for r in self._ops.values()
            if (project is None or r.project in (project, "")) and self._visible(r, now)
        ]

    async def wait_final(self, op_id: str, timeout: float | None) -> Record | None:
        """Wait until the operation ends or ``timeout`` (None: forever) passes.

        The record a waiter holds is the live one: it returns the final state even if the
        operation ended (and was forgotten) between the wake-up and the answer.
        """
        record = self.get(op_id)
        if record is None:
            return None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not record.final:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            try:
                await asyncio.wait_for(record.changed.wait(), remaining)
            except TimeoutError:
                break
        return record

    def __len__(self) -> int:
        return len(self._ops)
