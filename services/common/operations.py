"""LXD operations run by a service and recorded in the log.

The service that runs an asynchronous job owns its operation: it appends
``operation-created`` (the LXD operation object, status Running) on
``subjects.operation(<id>)``, ``operation-updated`` for each change of metadata, and a final
``operation-updated`` (Success, Failure or Cancelled). The gateway only reads these events.
While the job runs, the owner answers cancel requests on ``subjects.operation_cancel(<id>)``
by cancelling the job's task; the final event then says Cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from nats.aio.client import Client
from nats.aio.msg import Msg

from schemas import codec, events, subjects
from schemas.envelope import Event, utcnow
from schemas.errors import BadRequest, WarrenError
from schemas.lxd.operation import STATUS_TEXT, Operation, StatusCode
from schemas.messages import Reply, Request, RequestMeta
from services.common.eventstore import EventStore, WrongSequence

log = logging.getLogger(__name__)

OperationClass = Literal["task", "websocket", "token"]

RUNNING, SUCCESS = StatusCode.RUNNING, StatusCode.SUCCESS
FAILURE, CANCELLED = StatusCode.FAILURE, StatusCode.CANCELLED

#: What the job does; it gets its operation (to report progress) and may return metadata
#: to merge into the operation's metadata on success.
Work = Callable[["RunningOperation"], Awaitable[dict[str, Any] | None]]


def lxd_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as LXD writes timestamps."""
    return moment.isoformat().replace("+00:00", "Z")


def orphan_failure(last: Event, node: str, reason: str) -> Event:
    """The event recording that an operation whose owner died failed (``last`` is its newest
    event; append it expecting that event's sequence, so a live owner is never overwritten)."""
    payload = {
        **last.payload,
        "status_code": FAILURE,
        "status": STATUS_TEXT[FAILURE],
        "err": reason,
        "may_cancel": False,
        "updated_at": lxd_time(utcnow()),
    }
    return Event(
        type=events.OPERATION_UPDATED,
        aggregate=subjects.OPERATION_AGGREGATE,
        aggregate_id=last.aggregate_id,
        version=last.version + 1,
        project=last.project,
        correlation_id=last.aggregate_id,
        requestor="warren",
        node=node,
        payload=payload,
    )


class RunningOperation:
    """One operation of this process: its current LXD object and the task doing the job."""

    def __init__(
        self, recorder: OperationRecorder, obj: dict[str, Any], project: str, meta: RequestMeta
    ) -> None:
        self.recorder = recorder
        self.object = obj
        self.project = project
        self.meta = meta
        self.task: asyncio.Task[None] | None = None
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self._seq = 0
        self._version = 0
        self._lock = asyncio.Lock()
        self._cancel_requestor: str | None = None
        self._sub: Any = None
        self._answers: set[asyncio.Task[None]] = set()

    @property
    def id(self) -> str:
        return str(self.object["id"])

    @property
    def seq(self) -> int:
        """Stream sequence of the operation's latest recorded event."""
        return self._seq

    @property
    def status_code(self) -> int:
        return int(self.object["status_code"])

    async def update(self, metadata: dict[str, Any], replace: bool = False) -> None:
        """Record new metadata (merged into the current one unless ``replace``)."""
        merged = metadata if replace else {**(self.object.get("metadata") or {}), **metadata}
        await self._record({"metadata": merged})

    async def wait(self) -> dict[str, Any]:
        """Wait for the job to end and its outcome to be recorded; the final object."""
        await self.finished.wait()
        return self.object

    async def cancel(self, requestor: str = "unknown") -> dict[str, Any]:
        """Cancel the job (if it may be cancelled) and return the final object."""
        if not self.object["may_cancel"]:
            raise BadRequest("This operation can't be cancelled")
        if self.task is not None and not self.task.done():
            self._cancel_requestor = requestor
            self.task.cancel()
        return await self.wait()

    async def _record(self, changes: dict[str, Any], requestor: str | None = None) -> None:
        # One writer per operation subject; the lock keeps the expected-sequence chain intact.
        async with self._lock:
            obj = {**self.object, **changes, "updated_at": lxd_time(utcnow())}
            first = self._version == 0
            event = Event(
                type=events.OPERATION_CREATED if first else events.OPERATION_UPDATED,
                aggregate=subjects.OPERATION_AGGREGATE,
                aggregate_id=self.id,
                version=self._version + 1,
                project=self.project,
                correlation_id=self.id,
                causation_id=self.meta.causation_id,
                requestor=requestor or self.meta.requestor,
                node=self.recorder.node,
                payload=obj,
            )
            self._seq = await self.recorder.store.append([event], expected_seq=self._seq)
            self._version += 1
            self.object = obj

    async def _run(self, work: Work) -> None:
        final: dict[str, Any]
        requestor: str | None = None
        self.started.set()
        try:
            result = await work(self)
            metadata = {**(self.object.get("metadata") or {}), **(result or {})}
            final = {"status_code": SUCCESS, "metadata": metadata or None}
        except asyncio.CancelledError:
            requestor = self._cancel_requestor
            if requestor is None:  # the service is stopping, nobody asked
                final = {"status_code": FAILURE, "err": "The service stopped during the operation"}
            else:
                final = {"status_code": CANCELLED}
        except WarrenError as exc:
            final = {"status_code": FAILURE, "err": exc.message}
        except Exception as exc:
            log.exception("operation %s failed", self.id)
            final = {"status_code": FAILURE, "err": str(exc) or type(exc).__name__}
        final["status"] = STATUS_TEXT[final["status_code"]]
        final["may_cancel"] = False
        try:
            await self._stop_listening()
            await asyncio.shield(self._record(final, requestor))
        except Exception:
            log.exception("could not record the end of operation %s", self.id)
            self.object = {**self.object, **final}
        finally:
            self.finished.set()
            self.recorder.running.pop(self.id, None)

    async def _listen(self, nc: Client) -> None:
        self._sub = await nc.subscribe(subjects.operation_cancel(self.id), cb=self._on_cancel)

    async def _stop_listening(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_cancel(self, msg: Msg) -> None:
        # Answer from a task of its own: ending the job unsubscribes, which cancels the
        # subscription's callback task, and the answer must survive that.
        task = asyncio.create_task(self._answer_cancel(msg))
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _answer_cancel(self, msg: Msg) -> None:
        try:
            request = codec.decode(Request, msg.data)
            reply = Reply(result=await self.cancel(request.meta.requestor), seq=self._seq)
        except WarrenError as exc:
            reply = Reply.failure(exc)
        except Exception as exc:
            reply = Reply.failure(WarrenError(f"internal error: {exc}"))
        if msg.reply:
            await msg.respond(codec.encode(reply))


class OperationRecorder:
    """Starts, records and cancels the operations of one service process."""

    def __init__(self, nc: Client, store: EventStore, node: str, location: str = "none") -> None:
        self.nc = nc
        self.store = store
        self.node = node
        self.location = location
        self.running: dict[str, RunningOperation] = {}

    async def start(
        self,
        work: Work,
        *,
        description: str,
        op_class: OperationClass = "task",
        resources: dict[str, list[str]] | None = None,
        metadata: dict[str, Any] | None = None,
        may_cancel: bool = True,
        meta: RequestMeta | None = None,
        project: str = "default",
        operation_id: str | None = None,
    ) -> RunningOperation:
        """Record the operation as Running, listen for cancels, and start the job."""
        now = lxd_time(utcnow())
        obj = Operation(
            id=operation_id or str(uuid.uuid4()),
            class_=op_class,
            description=description,
            created_at=now,
            updated_at=now,
            status=STATUS_TEXT[RUNNING],
            status_code=RUNNING,
            resources=resources,
            metadata=metadata,
            may_cancel=may_cancel,
            location=self.location,
        ).to_lxd()
        op = RunningOperation(self, obj, project, meta or RequestMeta())
        try:
            await op._record({})
        except WrongSequence:
            if operation_id is None:
                raise
            # The id asked for (the request's correlation id) already names an operation.
            return await self.start(
                work,
                description=description,
                op_class=op_class,
                resources=resources,
                metadata=metadata,
                may_cancel=may_cancel,
                meta=meta,
                project=project,
            )
        if may_cancel:
            await op._listen(self.nc)
        self.running[op.id] = op
        op.task = asyncio.create_task(op._run(work), name=f"operation-{op.id}")
        # A task cancelled before its first step never runs its handlers: let it start, so
        # an early cancel is recorded like any other.
        await op.started.wait()
        return op

    async def run(self, work: Work, **kwargs: Any) -> dict[str, Any]:
        """Start an operation and wait for its end; the final LXD object."""
        op = await self.start(work, **kwargs)
        return await op.wait()

    async def stop(self) -> None:
        """Cancel whatever still runs (recorded as failed: nobody asked) and wait."""
        ops = list(self.running.values())
        for op in ops:
            if op.task is not None:
                op.task.cancel()
        for op in ops:
            await op.finished.wait()
