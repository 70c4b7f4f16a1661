"""``PUT /1.0/instances/<name>/state``: start, stop, restart, freeze, unfreeze.

The host acts first and the log records what happened (``instance-started``, ...): the
recorded power state is what ``boot.autostart`` and the start-up reconcile go by; what
``GET`` shows is always the host's live status.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from schemas import events, subjects
from schemas import instances as wire
from schemas.catalog import OperationResult
from schemas.envelope import utcnow
from schemas.errors import BadRequest
from schemas.messages import RequestMeta
from schemas.storage import MountedVolume
from services.common.endpoints import EndpointGroup
from services.common.operations import RunningOperation, lxd_time
from services.instance.drivers.spec import Status
from services.instance.instances import aggregate as agg
from services.instance.instances import config as cfg
from services.instance.instances import nics
from services.instance.instances.commands import InstanceCommands, resources
from services.instance.instances.context import Instances
from services.instance.instances.state import InstanceState
from services.instance.instances.templates import TemplateRenderer

#: Seconds a clean shutdown gets when the request names no timeout, before the kill.
DEFAULT_STOP_TIMEOUT = 30.0
#: The events of a start that ran the templates (a resume does not).
_STARTS = frozenset({events.INSTANCE_STARTED, events.INSTANCE_RESTARTED})
_DESCRIPTIONS = {
    "start": "Starting instance",
    "stop": "Stopping instance",
    "restart": "Restarting instance",
    "freeze": "Freezing instance",
    "unfreeze": "Unfreezing instance",
}


class PowerHandlers:
    """The state-change endpoint of this node."""

    def __init__(self, instances: Instances, commands: InstanceCommands) -> None:
        self.i = instances
        self.commands = commands
        self.templates = TemplateRenderer(instances)

    def register(self, group: EndpointGroup) -> None:
        subject = subjects.instance_node(subjects.INSTANCE_STATE_PUT, self.i.node)
        group.add(subject, wire.StateChange, self.change, concurrent=True)

    async def status(self, state: InstanceState) -> Status:
        return await self.i.live_status(state)

    async def change(self, body: wire.StateChange, meta: RequestMeta) -> tuple[Any, int]:
        i = self.i
        await i.fresh()
        state = i.get(meta, body.name)
        self.refuse(body, await self.status(state))  # answer at once when it cannot be done

        async def work(op: RunningOperation) -> None:
            async with i.lock(state.id):
                await self.act(body, state, meta)

        op = await i.catalog.operations.start(
            work,
            description=_DESCRIPTIONS[body.action],
            resources=resources(body.name, meta.project),
            meta=meta,
            project=meta.project,
            may_cancel=False,
        )
        return OperationResult(operation=op.object).model_dump(), op.seq

    @staticmethod
    def refuse(body: wire.StateChange, status: Status) -> None:
        """LXD's refusals for an action the instance's status does not allow."""
        if body.stateful:
            raise BadRequest("Stateful start and stop are not supported yet")
        if body.action == "start" and status is Status.RUNNING:
            raise BadRequest("The instance is already running")
        if body.action == "stop" and status is Status.STOPPED:
            raise BadRequest("The instance is already stopped")
        if body.action in ("restart", "freeze") and status is Status.STOPPED:
            raise BadRequest("The instance isn't running")
        if body.action == "freeze" and status is Status.FROZEN:
            raise BadRequest("The container is already frozen")
        if body.action == "unfreeze" and status is not Status.FROZEN:
            raise BadRequest("The instance isn't frozen")

    async def act(self, body: wire.StateChange, state: InstanceState, meta: RequestMeta) -> None:
        """Do the action on the host (status re-read under the lock), then record it."""
        i = self.i
        status = await self.status(state)
        self.refuse(body, status)
        timeout = body.timeout if body.timeout >= 0 else DEFAULT_STOP_TIMEOUT
        host = state.host_name
        if body.action == "start":
            if status is Status.FROZEN:  # LXD resumes a frozen instance on start
                await i.driver.unfreeze(host)
                return await self.record(state, events.INSTANCE_RESUMED, meta)
            await self.start(state)
            return await self.record(state, events.INSTANCE_STARTED, meta)
        if body.action == "stop":
            await i.driver.stop(host, timeout=timeout, force=body.force)
            kind = events.INSTANCE_STOPPED if body.force else events.INSTANCE_SHUTDOWN
            await self.record(state, kind, meta)
            if state.ephemeral:  # LXD deletes an ephemeral instance once it is stopped
                await self.commands.delete_stopped(state, meta)
            return None
        if body.action == "restart":
            await i.driver.stop(host, timeout=timeout, force=body.force)
            await self.start(state)
            return await self.record(state, events.INSTANCE_RESTARTED, meta)
        if body.action == "freeze":
            await i.driver.freeze(host)
            return await self.record(state, events.INSTANCE_PAUSED, meta)
        await i.driver.unfreeze(host)
        return await self.record(state, events.INSTANCE_RESUMED, meta)

    async def start(self, state: InstanceState) -> None:
        """Mount the volume (a host reboot unmounts it), render the image templates this
        start fires, and start; network nics are plugged meanwhile and the definition gets
        the bridges plugging named."""
        i = self.i

        async def prepare() -> MountedVolume:
            mounted = await i.mount(state)
            await self.templates.apply_at_start(state, Path(mounted.path))
            return mounted

        if not nics.networks(i.nics(state)):
            await prepare()
            await i.driver.start(state.host_name)
            return
        mounted, plugged = await asyncio.gather(prepare(), i.plug(state))
        await i.driver.update(i.spec(state, mounted, plugged))
        await i.driver.start(state.host_name)

    async def record(self, state: InstanceState, event_type: str, meta: RequestMeta) -> None:
        project = self.i.project_name(state)
        used = lxd_time(utcnow()) if event_type in agg.POWER_OF_EVENT else None
        # A start rendered the pending template trigger: it is no longer pending.
        unset = (cfg.APPLY_TEMPLATE,) if event_type in _STARTS else ()
        command = agg.RecordPower(project, event_type, used, unset=unset, meta=self.i.meta(meta))
        await self.i.decide(state.id, command)
