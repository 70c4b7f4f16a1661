"""Bus endpoints of ``/1.0/storage-pools`` on this node.

Queries are served from the projection (brought up to date by a barrier) plus the host for
what only the host knows (volumes, usage). Commands: decide (pure) -> host effect under a
``Reverter`` -> append; a failed append undoes the host effect (see the package docstring).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas import storage as wire
from schemas import subjects
from schemas.catalog import ByName, ListQuery, ObjectResult
from schemas.envelope import Event
from schemas.errors import BadRequest, Conflict, NotFound
from schemas.messages import RequestMeta
from services.common.aggregate import decide_and_append
from services.common.endpoints import EndpointGroup
from services.common.eventstore import EventStore
from services.common.names import NameRegistry, event_meta
from services.common.projection import ProjectionRunner
from services.common.revert import Reverter
from services.storage.pools import aggregate as agg
from services.storage.pools.host import HostPools
from services.storage.pools.projection import PoolProjection
from services.storage.pools.state import POOL, PoolState, pool_dict
from services.storage.pools.volumes import shown

log = logging.getLogger(__name__)


@dataclass
class Pools:
    """Everything the pool handlers share, wired once per process."""

    store: EventStore
    runner: ProjectionRunner
    projection: PoolProjection
    host: HostPools
    node: str
    names: NameRegistry = field(init=False)

    def __post_init__(self) -> None:
        self.names = NameRegistry(self.store, POOL)

    async def fresh(self) -> int:
        return await self.runner.barrier()

    def meta(self, meta: RequestMeta) -> agg.Meta:
        return agg.Meta(meta.requestor, meta.correlation_id, meta.causation_id, self.node)

    def pool_or_404(self, name: str) -> PoolState:
        state = self.projection.pool(self.node, name)
        if state is None:
            raise NotFound("Storage pool not found")
        return state

    async def used_by(self, state: PoolState) -> list[str]:
        """Profiles whose disks use the pool, then the images and instances on it (by their
        current names; a leftover volume no instance owns by its host name)."""
        found = self.projection.profiles_using(state.name)
        if self.host.unavailable(state):  # nothing more can be known
            return found
        for volume in await self.host.volumes(state):
            found.append(shown(self.projection, state, volume).used_by)
        return found

    async def view(self, state: PoolState) -> dict[str, Any]:
        await self.host.mount(state)
        return pool_dict(state, self.host.status(state), await self.used_by(state))

    async def result(self, state: PoolState) -> dict[str, Any]:
        return ObjectResult(object=await self.view(state), etag=state.etag).model_dump()


class PoolHandlers:
    """The pool endpoints of one storage service process."""

    def __init__(self, pools: Pools) -> None:
        self.p = pools

    def register(self, group: EndpointGroup) -> None:
        node = self.p.node
        for verb, model, handler in (
            (subjects.STORAGE_POOL_LIST, ListQuery, self.list),
            (subjects.STORAGE_POOL_GET, ByName, self.get),
            (subjects.STORAGE_POOL_CREATE, wire.CreatePool, self.create),
            (subjects.STORAGE_POOL_UPDATE, wire.UpdatePool, self.update),
            (subjects.STORAGE_POOL_DELETE, ByName, self.delete),
            (subjects.STORAGE_POOL_RESOURCES, ByName, self.resources),
        ):
            group.add(subjects.storage(verb, node), model, handler)

    # -- queries -------------------------------------------------------------------------

    async def list(self, body: ListQuery, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.p.fresh()
        pools = self.p.projection.pools_on(self.p.node)
        if body.recursion == 0:
            return [s.name for s in pools], seq
        return [await self.p.view(s) for s in pools], seq

    async def get(self, body: ByName, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.p.fresh()
        return await self.p.result(self.p.pool_or_404(body.name)), seq

    async def resources(self, body: ByName, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.p.fresh()
        state = self.p.pool_or_404(body.name)
        driver = await self.p.host.mounted(state)
        usage = await driver.usage()
        inodes = {"used": 0, "total": 0}
        root = getattr(driver, "root", None)
        if root is not None:
            st = await asyncio.to_thread(os.statvfs, root)  # a host call: off the event loop
            inodes = {"used": st.f_files - st.f_ffree, "total": st.f_files}
        space = {"used": usage.used, "total": usage.total}
        return {"space": space, "inodes": inodes}, seq

    # -- commands ------------------------------------------------------------------------

    async def create(self, body: wire.CreatePool, meta: RequestMeta) -> tuple[Any, int]:
        cmd_meta = self.p.meta(meta)
        pool_id = str(uuid.uuid4())

        def command(config: dict[str, str], taken: bool) -> agg.CreatePool:
            return agg.CreatePool(
                id=pool_id,
                name=body.name,
                node=self.p.node,
                driver=body.driver,
                description=body.description,
                config=config,
                name_taken=taken,
                meta=cmd_meta,
            )

        # Validate before touching anything (bad names must not reach the lock table).
        agg.decide(None, command(body.config, False))
        async with self.p.host.lock(body.name), Reverter() as revert:
            await self.p.fresh()
            taken = self.p.projection.pool(self.p.node, body.name) is not None
            agg.decide(None, command(body.config, taken))
            try:
                has_name = self.p.projection.has_name
                await self.p.names.claim(
                    self.p.node, body.name, pool_id, has_name, event_meta(cmd_meta)
                )
            except Conflict:
                raise Conflict("Storage pool already exists") from None
            revert.add(
                lambda: self.p.names.release(self.p.node, body.name, pool_id, event_meta(cmd_meta))
            )
            own = {k: v for k, v in body.config.items() if not k.startswith(agg.USER_PREFIX)}
            driver = self.p.host.driver_for(body.name, body.driver, own)
            completed = await driver.create()
            revert.add(driver.delete)
            events = agg.decide(None, command({**body.config, **completed}, False))
            seq = await self.p.store.append(events, expected_seq=0)
            revert.success()
        state = agg.from_event(events[-1])
        self.p.host.adopt(state, driver)
        await self.p.runner.projection.wait_for(seq)
        return await self.p.result(state), seq

    async def update(self, body: wire.UpdatePool, meta: RequestMeta) -> tuple[Any, int]:
        decided: list[PoolState] = []

        async def decision() -> tuple[Sequence[Event], int]:
            await self.p.fresh()
            state = self.p.pool_or_404(body.name)
            command = agg.UpdatePool(
                mode=body.mode,
                description=body.description,
                config=body.config,
                fields=tuple(body.fields),
                if_match=meta.if_match,
                meta=self.p.meta(meta),
            )
            events = agg.decide(state, command)
            decided[:] = [agg.from_event(events[-1]) if events else state]
            return events, self.p.projection.seq_of(state.id)

        seq = await decide_and_append(self.p.store, decision)
        return await self.p.result(decided[-1]), seq

    async def delete(self, body: ByName, meta: RequestMeta) -> tuple[Any, int]:
        cmd_meta = self.p.meta(meta)
        async with self.p.host.lock(body.name):
            await self.p.fresh()
            state = self.p.pool_or_404(body.name)
            used = await self.p.used_by(state)
            agg.decide(state, agg.DeletePool(used_by=tuple(used), meta=cmd_meta))
            if not self.p.host.unavailable(state):
                try:
                    await self.p.host.driver(state).delete()
                except Conflict:
                    raise BadRequest("The storage pool is currently in use") from None
            else:
                log.warning("deleting unavailable pool %s: nothing to remove", body.name)
            self.p.host.forget(state.id)

            # The host side is gone: the deletion must now be recorded (retrying on a
            # concurrent update), or the log would describe a pool that no longer exists.
            async def decision() -> tuple[Sequence[Event], int]:
                await self.p.fresh()
                current = self.p.pool_or_404(body.name)
                return agg.decide(current, agg.DeletePool(meta=cmd_meta)), (
                    self.p.projection.seq_of(current.id)
                )

            seq = await decide_and_append(self.p.store, decision)
        await self.p.names.release(self.p.node, state.name, state.id, event_meta(cmd_meta))
        return None, seq
