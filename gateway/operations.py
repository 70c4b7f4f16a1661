"""The operations read model: every LXD operation recorded in the log, folded by id.

Services record operations as events on ``events.operation.<id>`` (``operation-created`` /
``operation-updated``, payload = the LXD operation object). Any gateway replica replays the
same events, so all replicas list the same operations.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from schemas import events as event_types
from schemas.envelope import Event
from schemas.lxd.operation import is_final

#: Event types whose payload is the operation object (others on the subject are ignored).
OPERATION_STATES = frozenset({event_types.OPERATION_CREATED, event_types.OPERATION_UPDATED})


@dataclass
class Record:
    """One operation: its LXD object and the project it belongs to."""

    op: dict[str, Any]
    project: str
    finished_at: float | None = None  # epoch seconds, from the log, so replicas agree
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class OperationsView:
    """Operations by id, with waiters for ``/wait`` and a retention window for finished ones."""

    def __init__(self, retention_s: float = 600.0) -> None:
        self.retention_s = retention_s
        self._ops: dict[str, Record] = {}

    def apply(self, event: Event) -> dict[str, Any] | None:
        """Fold one operation event; return the operation as it now is."""
        if event.type not in OPERATION_STATES:
            return None
        payload = event.payload
        op_id = payload.get("id")
        if not isinstance(op_id, str) or not op_id:
            return None
        record = self._ops.get(op_id)
        if record is None:
            record = self._ops[op_id] = Record(op={}, project=event.project)
        # Payloads carry the whole object; merging also tolerates partial updates.
        record.op.update(payload)
        record.op.setdefault("location", "none")
        if is_final(int(record.op.get("status_code", 0))) and record.finished_at is None:
            # The time of the final event, from the log: every replica forgets it together.
            record.finished_at = event.occurred_at.timestamp()
        record.changed.set()
        record.changed = asyncio.Event()
        return record.op

    def _visible(self, record: Record, now: float) -> bool:
        return record.finished_at is None or now - record.finished_at < self.retention_s

    def prune(self) -> None:
        """Forget finished operations older than the retention window."""
        now = time.time()
        for op_id in [k for k, r in self._ops.items() if not self._visible(r, now)]:
            del self._ops[op_id]

    def get(self, op_id: str) -> Record | None:
        record = self._ops.get(op_id)
        if record is None or not self._visible(record, time.time()):
            return None
        return record

    def list(self, project: str | None) -> list[Record]:
        """Operations of one project (plus those of no project), or of all when ``None``."""
        self.prune()
        return [r for r in self._ops.values() if project is None or r.project in (project, "")]

    async def wait_final(self, op_id: str, timeout: float | None) -> Record | None:
        """Wait until the operation ends or ``timeout`` (None: forever) passes."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            record = self.get(op_id)
            if record is None or is_final(int(record.op.get("status_code", 0))):
                return record
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return record
            try:
                await asyncio.wait_for(record.changed.wait(), remaining)
            except TimeoutError:
                return self.get(op_id)

    def __len__(self) -> int:
        return len(self._ops)
