"""``POST /1.0/instances/<name>/exec`` on the node: an LXD websocket operation whose byte
streams cross the bus (schemas.exec_io); the session itself is services.instance.exec_session.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from schemas import events, subjects
from schemas import instances as wire
from schemas.catalog import OperationResult
from schemas.errors import BadRequest, WarrenError
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.common.operations import RunningOperation
from services.instance.drivers.spec import Status
from services.instance.exec_session import ExecSession
from services.instance.instances.commands import resources
from services.instance.instances.context import Instances
from services.instance.instances.state import InstanceState


class ExecHandler:
    """The exec endpoint of this node."""

    def __init__(self, instances: Instances, nc: Any) -> None:
        self.i = instances
        self.nc = nc

    def register(self, group: EndpointGroup) -> None:
        subject = subjects.instance_node(subjects.INSTANCE_EXEC, self.i.node)
        group.add(subject, wire.ExecStart, self.exec, concurrent=True)

    async def exec(self, body: wire.ExecStart, meta: RequestMeta) -> tuple[Any, int]:
        i = self.i
        started: _Started | None = None
        try:
            # The command is spawned (gated) on the projection as it is, so that the attach
            # into the container (~5 ms; far more when the kernel has to wait for a cgroup
            # sync) overlaps the barrier, the recording, the reply and the client connecting
            # its websockets; it runs once they are attached. If the barrier shows the
            # instance changed meanwhile, it is made again on fresh state.
            with contextlib.suppress(WarrenError):  # if so, it is told on fresh state
                started = await self._start(i.get(meta, body.name), body)
            await i.fresh()
            state = i.get(meta, body.name)
            if started is None or not started.matches(state, i):
                if started is not None:
                    await started.abandon()
                    started = None
                started = await self._start(state, body)
            session, host = started.session, started.session.host
            live = await started.status
            # Attaching to a frozen container hangs until it is thawed: refuse, as LXD does.
            if live is Status.STOPPED:
                raise BadRequest("Instance is not running")
            if live is Status.FROZEN:
                raise BadRequest("Instance is frozen")

            async def work(op: RunningOperation) -> dict[str, Any] | None:
                # Recorded while the client connects its websockets: off the reply's path.
                try:
                    await i.record(host, events.INSTANCE_EXEC, {"command": body.command}, meta)
                except BaseException:
                    await session.close()
                    raise
                return await session.run(op)

            op = await i.catalog.operations.start(
                work,
                description="Executing command",
                op_class=session.op_class,  # type: ignore[arg-type]
                resources=resources(body.name, meta.project),
                metadata=session.metadata(),
                meta=meta,
                project=meta.project,
                operation_id=session.operation_id,
                may_cancel=False,
            )
        except BaseException:
            if started is not None:
                await started.abandon()
            raise
        return OperationResult(operation=op.object).model_dump(), op.seq

    async def _start(self, state: InstanceState, body: wire.ExecStart) -> _Started:
        """A session for ``state`` with its command spawning, and the host's status read."""
        status = asyncio.ensure_future(self.i.live_status(state))
        try:
            host = await self.i.host_of(state, mount=False)
            session = ExecSession(self.nc, host, body, str(uuid.uuid4()))
            session.begin()
            try:
                await session.prepare()
            except BaseException:
                await session.close()
                raise
        except BaseException:
            await _cancel(status)
            raise
        return _Started(session, status, state.version)


class _Started:
    """An exec session begun on some state of its instance, and that state's host status."""

    def __init__(self, session: ExecSession, status: asyncio.Future[Status], version: int):
        self.session = session
        self.status = status
        self.version = version

    def matches(self, state: InstanceState, instances: Instances) -> bool:
        """Was it begun on what ``state`` says (same instance, version and expanded config)?"""
        host = self.session.host
        return (
            host.instance_id == state.id
            and self.version == state.version
            and host.config == instances.expanded(state).config
        )

    async def abandon(self) -> None:
        await _cancel(self.status)
        await self.session.close()


async def _cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
