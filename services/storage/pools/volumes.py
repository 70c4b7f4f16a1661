"""Volumes of this node's pools as LXD shows them.

Warren's volumes are made by the image and instance services through the drivers; here they
are only listed (``/1.0/storage-pools/<pool>/volumes[/<type>[/<name>]]``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from schemas import storage as wire
from schemas import subjects
from schemas.errors import NotFound
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.storage.drivers import VolumeInfo
from services.storage.pools.state import PoolState

#: Where the object using a volume lives, by volume type.
_USERS = {"image": "images", "container": "instances"}


def user_url(volume_type: str, name: str) -> str:
    """The object a volume belongs to: ``/1.0/images/<fp>`` or ``/1.0/instances/<name>``."""
    return f"/1.0/{_USERS.get(volume_type, volume_type)}/{quote(name, safe='')}"


def volume_dict(volume: VolumeInfo, project: str = "default") -> dict[str, Any]:
    """The LXD ``StorageVolume`` object of one volume."""
    config: dict[str, str] = {}
    if volume.used_bytes is not None:
        config["volatile.used_bytes"] = str(volume.used_bytes)
    return {
        "name": volume.name,
        "type": volume.type,
        "description": "",
        "config": config,
        "used_by": [user_url(volume.type, volume.name)],
        "location": "none",
        "content_type": "filesystem",
        "project": project,
    }


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
        _, volumes, seq = await self._volumes(body)
        if body.recursion == 0:
            return [f"{v.type}/{v.name}" for v in volumes], seq
        return [volume_dict(v, meta.project) for v in volumes], seq

    async def get(self, body: wire.VolumeQuery, meta: RequestMeta) -> tuple[Any, int]:
        _, volumes, seq = await self._volumes(body)
        for volume in volumes:
            if volume.name == body.name:
                return volume_dict(volume, meta.project), seq
        raise NotFound("Storage volume not found")
