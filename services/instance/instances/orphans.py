"""Instance operations a dead node agent left Running are failed when it starts again.

Only the node agent runs its node's instance operations, so at its start none recorded
before it can still be alive: each gets a final ``Failure`` (with the expected-sequence check,
so nothing newer is overwritten), and ``lxc launch`` waiting on one gets an answer.
"""

from __future__ import annotations

import logging
from typing import Any

from schemas import subjects
from schemas.envelope import Event, StoredEvent
from schemas.lxd.operation import StatusCode
from services.common.eventstore import EventStore, WrongSequence
from services.common.operations import orphan_failure
from services.common.projection import Projection

log = logging.getLogger(__name__)

STOPPED = "The instance service stopped during the operation; check the instance and try again"


class RunningInstanceOperations(Projection):
    """Running operations about instances, by id: the seq and event of their latest state."""

    name = "instance-operations"
    aggregates = frozenset({subjects.OPERATION_AGGREGATE})

    def __init__(self) -> None:
        super().__init__()
        self.ops: dict[str, tuple[int, Event]] = {}

    def apply(self, stored: StoredEvent) -> None:
        event = stored.event
        payload = event.payload
        if "instances" not in (payload.get("resources") or {}):
            return
        op_id = str(payload.get("id"))
        if int(payload.get("status_code", 0)) == StatusCode.RUNNING:
            self.ops[op_id] = (stored.seq, event)
        else:
            self.ops.pop(op_id, None)

    def dump(self) -> Any:
        return {k: [seq, e.model_dump(mode="json")] for k, (seq, e) in self.ops.items()}

    def load(self, state: Any) -> None:
        self.ops = {k: (int(v[0]), Event.model_validate(v[1])) for k, v in (state or {}).items()}


async def fail_orphans(
    store: EventStore, running: RunningInstanceOperations, node: str, up_to_seq: int
) -> int:
    """Fail this node's instance operations recorded at or before ``up_to_seq``."""
    failed = 0
    for seq, event in list(running.ops.values()):
        if event.node != node or seq > up_to_seq:
            continue
        final = orphan_failure(event, node, STOPPED)
        try:
            await store.append([final], expected_seq=seq)
            failed += 1
        except WrongSequence:
            continue
    if failed:
        log.warning("%d instance operation(s) of a previous run recorded as failed", failed)
    return failed
