"""``POST /1.0/instances/<name>/exec`` on the node: an LXD websocket operation whose byte
streams cross the bus (schemas.exec_io); the session itself is services.instance.exec_session.
"""

from __future__ import annotations

import uuid
from typing import Any

from schemas import events, subjects
from schemas import instances as wire
from schemas.catalog import OperationResult
from schemas.errors import BadRequest
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.common.operations import RunningOperation
from services.instance.drivers.spec import Status
from services.instance.exec_session import ExecSession
from services.instance.instances.commands import resources
from services.instance.instances.context import Instances


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
        await i.fresh()
        state = i.get(meta, body.name)
        status = await i.live_status(state)
        # Attaching to a frozen container hangs until it is thawed: refuse, as LXD does.
        if status is Status.STOPPED:
            raise BadRequest("Instance is not running")
        if status is Status.FROZEN:
            raise BadRequest("Instance is frozen")
        host = await i.host_of(state, mount=False)
        operation_id = str(uuid.uuid4())
        session = ExecSession(self.nc, host, body, operation_id)
        await session.prepare()

        async def work(op: RunningOperation) -> dict[str, Any] | None:
            # Recorded while the client connects its websockets: off the reply's path.
            try:
                await i.record(host, events.INSTANCE_EXEC, {"command": body.command}, meta)
            except BaseException:
                await session.close()
                raise
            return await session.run(op)

        try:
            op = await i.catalog.operations.start(
                work,
                description="Executing command",
                op_class=session.op_class,  # type: ignore[arg-type]
                resources=resources(body.name, meta.project),
                metadata=session.metadata(),
                meta=meta,
                project=meta.project,
                operation_id=operation_id,
                may_cancel=False,
            )
        except BaseException:
            await session.close()
            raise
        return OperationResult(operation=op.object).model_dump(), op.seq
