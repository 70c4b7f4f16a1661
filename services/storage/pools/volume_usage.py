"""What instance volumes hold of their own: many at once, and one volume's LXD state.

- ``instance-volume-usage`` (asked by the instance service of this node for ``GET /state``
  and ``recursion=2`` listings): the usage of many volumes (by host name) in one request,
  each pool's share counted by its driver in one host call (a thread); volumes, pools or
  figures that cannot be had are left out, so a listing still answers;
- ``volume-state`` (``GET /1.0/storage-pools/<pool>/volumes/<type>/<name>/state``): LXD's
  ``StorageVolumeState`` of a container volume found by its LXD name (as ``volume-get``).

The figure is the instance root's own bytes, never its image's (see
``StorageDriver.instance_usage``); ``total`` is the quota, 0 as no driver has quotas yet.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from schemas import storage as wire
from schemas import subjects
from schemas.errors import BadRequest, NotFound, WarrenError
from schemas.lxd.storage import StorageVolumeState, StorageVolumeStateUsage
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.storage.drivers.base import check_volume_name
from services.storage.pools.handlers import Pools
from services.storage.pools.volumes import find, shown

log = logging.getLogger(__name__)

#: Volume types LXD 5.0 serves a state for (Warren makes no custom or VM volumes yet).
STATE_TYPES = frozenset({"container", "virtual-machine", "custom"})
VOLUME_TYPES = STATE_TYPES | {"image"}


class VolumeUsageHandlers:
    """The usage endpoints of one storage service process."""

    def __init__(self, pools: Pools) -> None:
        self.p = pools

    def register(self, group: EndpointGroup) -> None:
        node = self.p.node
        for verb, model, handler in (
            (subjects.STORAGE_INSTANCE_VOLUME_USAGE, wire.InstanceVolumeUsageQuery, self.usage),
            (subjects.STORAGE_VOLUME_STATE, wire.VolumeQuery, self.state),
        ):
            # Counting may walk trees: never hold up the requests behind it.
            group.add(subjects.storage(verb, node), model, handler, concurrent=True)

    async def usage(
        self, body: wire.InstanceVolumeUsageQuery, meta: RequestMeta
    ) -> tuple[Any, int]:
        # No barrier: the pools of existing instances are known already, and a figure missed
        # for a pool made a moment ago costs nothing (the answer only leaves it out).
        seq = self.p.projection.applied_seq
        wanted: dict[str, list[str] | None] = {}
        if body.volumes is None:
            wanted = {state.name: None for state in self.p.projection.pools_on(self.p.node)}
        else:
            for ref in body.volumes:
                names = wanted.setdefault(ref.pool, [])
                assert names is not None
                names.append(check_volume_name(ref.name))
        counted = await asyncio.gather(*(self._pool(pool, names) for pool, names in wanted.items()))
        volumes = [usage for share in counted for usage in share]
        return wire.InstanceVolumeUsages(volumes=volumes).model_dump(), seq

    async def _pool(self, pool: str, names: list[str] | None) -> list[wire.InstanceVolumeUsage]:
        """The usage of ``names`` (None: all) in one pool; nothing if it cannot be had."""
        state = self.p.projection.pool(self.p.node, pool)
        if state is None or not await self.p.host.mount(state):
            return []
        try:
            found = await self.p.host.driver(state).instance_usage(names)
        except WarrenError as exc:
            log.warning("usage of volumes in pool %s unavailable: %s", pool, exc.message)
            return []
        return [
            wire.InstanceVolumeUsage(pool=pool, name=name, used=usage.used, total=usage.total)
            for name, usage in found.items()
        ]

    async def state(self, body: wire.VolumeQuery, meta: RequestMeta) -> tuple[Any, int]:
        if body.type not in VOLUME_TYPES:
            raise BadRequest("Invalid storage volume type")
        if body.type not in STATE_TYPES:
            raise BadRequest(f'Invalid storage volume type "{body.type}"')
        seq = await self.p.fresh()
        state = self.p.pool_or_404(body.pool)
        volumes = [v for v in await self.p.host.volumes(state) if v.type == body.type]
        items = [shown(self.p.projection, state, v, meta.project) for v in volumes]
        item = find(items, body.name or "", meta.project)
        if item is None:
            raise NotFound("Storage volume not found")
        driver = await self.p.host.mounted(state)
        usage = (await driver.instance_usage([item.volume.name])).get(item.volume.name)
        if usage is None:  # deleted meanwhile
            raise NotFound("Storage volume not found")
        result = StorageVolumeState(
            usage=StorageVolumeStateUsage(used=usage.used, total=usage.total)
        )
        return result.model_dump(), seq
