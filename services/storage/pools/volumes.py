"""Volumes of this node's pools as LXD shows them.

Warren's volumes are made by the image and instance services through the drivers; here they
are only listed (``/1.0/storage-pools/<pool>/volumes[/<type>[/<name>]]``).

A container volume is named on the host after its instance's host name (``w-<id hex>``,
fixed at creation). LXD clients see it under the instance's current name and project, which
the pools projection folds from the instance and project events; a volume no instance of the
log owns (a leftover) keeps its host name.

The instance service reconciles against host names through its own query
(``instance-volume-list``). A single volume is found by its LXD name or its host name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from schemas import storage as wire
from schemas import subjects
from schemas.errors import NotFound
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.storage.drivers import VolumeInfo
from services.storage.pools.projection import PoolProjection, instance_url
from services.storage.pools.state import PoolState

#: Where the object using a volume lives, by volume type.
_USERS = {"image": "images", "container": "instances"}


def user_url(volume_type: str, name: str, project: str = "default") -> str:
    """The object a volume belongs to: ``/1.0/images/<fp>`` or
    ``/1.0/instances/<name>[?project=<p>]``."""
    if volume_type == "container":
        return instance_url(name, project)
    return f"/1.0/{_USERS.get(volume_type, volume_type)}/{quote(name, safe='')}"


@dataclass(frozen=True)
class ShownVolume:
    """A volume as LXD clients see it: its name and project (the instance's for a container
    volume whose owner the log knows), and whether an instance of the log owns it."""

    volume: VolumeInfo
    name: str
    project: str
    owned: bool = False

    @property
    def used_by(self) -> str:
        return user_url(self.volume.type, self.name, self.project)


def shown(
    projection: PoolProjection, pool: PoolState, volume: VolumeInfo, project: str = "default"
) -> ShownVolume:
    """``volume`` of ``pool`` as LXD shows it (``project``: the one asked about, for the
    volumes no instance owns)."""
    if volume.type == "container":
        owner = projection.volume_owner(pool, volume.name)
        if owner is not None:
            return ShownVolume(volume, owner.name, owner.project, owned=True)
    return ShownVolume(volume, volume.name, project)


def volume_dict(item: ShownVolume) -> dict[str, Any]:
    """The LXD ``StorageVolume`` object of one volume."""
    config: dict[str, str] = {}
    if item.volume.used_bytes is not None:
        config["volatile.used_bytes"] = str(item.volume.used_bytes)
    return {
        "name": item.name,
        "type": item.volume.type,
        "description": "",
        "config": config,
        "used_by": [item.used_by],
        "location": "none",
        "content_type": "filesystem",
        "project": item.project,
    }


def find(items: list[ShownVolume], name: str, project: str) -> ShownVolume | None:
    """The volume LXD would call ``name`` in ``project`` (an instance name is unique per
    project only), else one of that name in another project, else one whose host name it is."""
    named = [item for item in items if item.name == name]
    for item in named:
        if item.project == project:
            return item
    if named:
        return named[0]
    for item in items:
        if item.volume.name == name:
            return item
    return None


class VolumeHandlers:
    """Volume listing endpoints (the pools handlers' shared state gives pools and host)."""

    def __init__(self, pools: Any) -> None:
        self.p = pools

    def register(self, group: EndpointGroup) -> None:
        node = self.p.node
        group.add(subjects.storage(subjects.STORAGE_VOLUME_LIST, node), wire.VolumeQuery, self.list)
        group.add(subjects.storage(subjects.STORAGE_VOLUME_GET, node), wire.VolumeQuery, self.get)

    async def _volumes(self, body: wire.VolumeQuery) -> tuple[PoolState, list[VolumeInfo], int]:
        seq = await self.p.fresh()
        state = self.p.pool_or_404(body.pool)
        volumes = await self.p.host.volumes(state, usage=body.recursion > 0 or bool(body.name))
        if body.type is not None:
            volumes = [v for v in volumes if v.type == body.type]
        return state, volumes, seq

    async def list(self, body: wire.VolumeQuery, meta: RequestMeta) -> tuple[Any, int]:
        state, volumes, seq = await self._volumes(body)
        projection = self.p.projection
        views = [volume_dict(shown(projection, state, v, meta.project)) for v in volumes]
        if body.recursion == 0:
            return [f"{v['type']}/{v['name']}" for v in views], seq
        return views, seq

    async def get(self, body: wire.VolumeQuery, meta: RequestMeta) -> tuple[Any, int]:
        state, volumes, seq = await self._volumes(body)
        items = [shown(self.p.projection, state, v, meta.project) for v in volumes]
        found = find(items, body.name or "", meta.project)
        if found is None:
            raise NotFound("Storage volume not found")
        return volume_dict(found), seq
