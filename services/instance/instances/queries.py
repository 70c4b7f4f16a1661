"""Instance queries: list and get (cluster-scoped, from the projection) and the live state
of one instance (node-scoped: only its host knows; its disk figures come from this node's
storage service, one request for a whole listing)."""

from __future__ import annotations

import asyncio
from typing import Any

from schemas import instances as wire
from schemas import subjects
from schemas.catalog import ByName
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.instance.drivers.spec import InstanceState as HostState
from services.instance.drivers.spec import Status
from services.instance.instances import disk
from services.instance.instances.context import STATUS_CODES, Instances
from services.instance.instances.state import InstanceState


def state_dict(status: str, host: HostState | None = None) -> dict[str, Any]:
    """The LXD ``InstanceState`` object (its ``disk`` is filled in by :mod:`.disk`)."""
    host = host or HostState(status=Status.STOPPED)
    return {
        "status": status,
        "status_code": STATUS_CODES.get(status, 112),
        "disk": {},
        "memory": {
            "usage": host.memory_usage,
            "usage_peak": host.memory_usage_peak,
            "swap_usage": 0,
            "swap_usage_peak": 0,
        },
        "network": {name: iface.model_dump() for name, iface in host.network.items()},
        "pid": host.pid,
        "processes": host.processes,
        "cpu": {"usage": host.cpu_usage_ns},
    }


class InstanceQueries:
    """``instance-list`` and ``instance-get`` (any replica) and ``instance-state`` (node)."""

    def __init__(self, instances: Instances) -> None:
        self.i = instances

    def register(self, catalog_group: EndpointGroup, node_group: EndpointGroup) -> None:
        catalog_group.add(subjects.INSTANCES_LIST, wire.InstanceListQuery, self.list)
        catalog_group.add(subjects.INSTANCES_GET, ByName, self.get)
        node_group.add(
            subjects.instance_node(subjects.INSTANCE_STATE, self.i.node),
            wire.StateQuery,
            self.state,
            concurrent=True,
        )

    async def list(self, body: wire.InstanceListQuery, meta: RequestMeta) -> tuple[Any, int]:
        i = self.i
        seq = await i.fresh()
        index = i.projection.instances
        if body.all_projects:
            found = index.all()
        else:
            found = index.in_project(i.project_or_404(meta).id)
        if body.recursion == 0:
            return [s.name for s in found], seq
        live = await self._live(found)
        views = [i.view(s, i.status_of(s, live)) for s in found]
        if body.recursion >= 2:
            # Live figures of each instance are independent host reads: gather them, with
            # the disk figures of them all (one storage request).
            usages, *states = await asyncio.gather(
                disk.root_usages(i.peers, found),
                *(self._state_of(s, v["status"]) for s, v in zip(found, views, strict=True)),
            )
            for s, view, state in zip(found, views, states, strict=True):
                state["disk"] = disk.disk_state(view["expanded_devices"], usages.get(s.host_name))
                view["state"] = state
                view["snapshots"] = []
                view["backups"] = []
        return views, seq

    async def get(self, body: ByName, meta: RequestMeta) -> tuple[Any, int]:
        i = self.i
        seq = await i.fresh()
        state = i.get(meta, body.name)
        live = await self._live_one(state)
        result = wire.InstanceResult(
            object=i.view(state, i.status_of(state, live)), etag=state.etag, node=state.node
        )
        return result.model_dump(), seq

    async def state(self, body: wire.StateQuery, meta: RequestMeta) -> tuple[Any, int]:
        i = self.i
        seq = await i.fresh()
        state = i.get(meta, body.name)

        async def live() -> dict[str, Any]:
            return await self._state_of(state, i.status_of(state, await self._live_one(state)))

        usages, found = await asyncio.gather(disk.root_usages(i.peers, [state]), live())
        found["disk"] = disk.disk_state(i.expanded(state).devices, usages.get(state.host_name))
        return found, seq

    async def _live(self, found: list[InstanceState]) -> dict[str, Status] | None:
        """Live statuses when any of ``found`` is on this node (one host call)."""
        if any(s.node == self.i.node for s in found):
            return await self.i.live_statuses()
        return None

    async def _live_one(self, state: InstanceState) -> dict[str, Status] | None:
        if state.node != self.i.node:
            return None
        return {state.host_name: await self.i.live_status(state)}

    async def _state_of(self, state: InstanceState, status: str) -> dict[str, Any]:
        if status == "Stopped" or state.node != self.i.node:
            return state_dict(status)
        try:
            host = await self.i.driver.state(state.host_name)
        except Exception:  # gone between the listing and now: report it stopped
            return state_dict("Stopped")
        return state_dict(host.status.value, host)
