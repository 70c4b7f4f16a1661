"""Operations of a dead image service process are failed, not left Running forever.

A process killed during an import or delete leaves its operation Running in the log, and
``lxc image import`` would wait for it forever. Every operation this service runs answers
``subjects.image_operation_alive(<id>)`` while it runs; at start-up each replica asks about
the image operations the log still shows Running (and old enough that their owner had time
to start answering). Nobody answering means the owner is gone: the operation is recorded as
failed, with the usual expected-sequence check so a late owner is never overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

import nats
from nats.aio.client import Client

from schemas import subjects
from schemas.envelope import Event, utcnow
from schemas.lxd.operation import StatusCode
from services.common.eventstore import EventStore, WrongSequence
from services.common.operations import RunningOperation, orphan_failure

log = logging.getLogger(__name__)

#: The descriptions of the operations this service runs (LXD's wording).
DESCRIPTIONS = frozenset({"Downloading image", "Deleting image"})
#: A Running operation younger than this may belong to a process still starting to answer.
GRACE = timedelta(seconds=5)
STOPPED = "The image service stopped during the operation"


class RunningOps:
    """Image operations the log shows Running: id -> (seq, version, object, project, node)."""

    def __init__(self) -> None:
        self.ops: dict[str, dict[str, Any]] = {}

    def apply(self, seq: int, event: Event) -> None:
        payload = event.payload
        op_id = payload.get("id")
        known = self.ops.get(op_id) if isinstance(op_id, str) else None
        if known is None and payload.get("description") not in DESCRIPTIONS:
            return
        if int(payload.get("status_code", 0)) != StatusCode.RUNNING:
            self.ops.pop(str(op_id), None)
            return
        self.ops[str(op_id)] = {"seq": seq, "event": event}

    def dump(self) -> Any:
        return {
            op_id: {"seq": known["seq"], "event": known["event"].model_dump(mode="json")}
            for op_id, known in self.ops.items()
        }

    def load(self, state: Any) -> None:
        self.ops = {
            k: {"seq": int(v["seq"]), "event": Event.model_validate(v["event"])}
            for k, v in (state or {}).items()
        }


async def answer_while_running(nc: Client, op: RunningOperation) -> None:
    """Answer liveness probes about ``op`` until it has finished."""

    async def alive(msg: Any) -> None:
        if msg.reply:
            await msg.respond(b"")

    sub = await nc.subscribe(subjects.image_operation_alive(op.id), cb=alive)

    async def unsubscribe_at_end() -> None:
        try:
            await op.finished.wait()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    task = asyncio.create_task(unsubscribe_at_end())
    _KEEP.add(task)
    task.add_done_callback(_KEEP.discard)


_KEEP: set[asyncio.Task[None]] = set()


async def fail_orphans(
    nc: Client, store: EventStore, running: RunningOps, node: str, up_to_seq: int
) -> tuple[int, float | None]:
    """Record as failed every Running image operation (last written at or before
    ``up_to_seq``) nobody answers for. Returns how many, and in how many seconds the
    youngest ones, too young to judge now, should be looked at again (None: none left)."""
    failed = 0
    again: float | None = None
    for op_id, known in list(running.ops.items()):
        event: Event = known["event"]
        if known["seq"] > up_to_seq:
            continue  # written after this process started: a live owner's
        wait = (GRACE - (utcnow() - event.occurred_at)).total_seconds()
        if wait > 0:
            again = wait if again is None else min(again, wait)
            continue
        try:
            await nc.request(subjects.image_operation_alive(op_id), b"", timeout=2)
            continue  # its owner is alive
        except nats.errors.NoRespondersError:
            pass
        except nats.errors.TimeoutError:
            continue  # someone got it but is slow: not an orphan
        final = orphan_failure(event, node, STOPPED)
        try:
            await store.append([final], expected_seq=known["seq"])
            failed += 1
        except WrongSequence:
            continue  # the operation moved on meanwhile
    return failed, again
