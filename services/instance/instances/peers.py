"""What the instance service asks of the image, storage and network services, over the bus."""

from __future__ import annotations

from typing import Any

from schemas import images as image_wire
from schemas import networks as network_wire
from schemas import storage as storage_wire
from schemas import subjects
from schemas.catalog import ByName, ListQuery, ObjectResult
from schemas.client import Bus
from schemas.errors import BadRequest, NotFound, Unavailable
from schemas.instances import InstanceSource
from schemas.messages import RequestMeta

#: Unpacking a big image into a pool can take a while; ordinary volume work is quick.
IMAGE_VOLUME_TIMEOUT = 600.0
VOLUME_TIMEOUT = 60.0
#: Disk figures are a nicety of a state read: a slow storage service must not stall it.
USAGE_TIMEOUT = 2.0
#: The network service answers from memory: a short wait keeps a dead one from stalling us.
NETWORK_TIMEOUT = 5.0


class Peers:
    """The image service (cluster-scoped) and this node's storage and network services."""

    def __init__(self, bus: Bus, node: str) -> None:
        self.bus = bus
        self.node = node

    # -- images ----------------------------------------------------------------------------

    async def resolve_image(self, source: InstanceSource, meta: RequestMeta) -> dict[str, Any]:
        """The LXD image object a create's ``source`` names (alias or fingerprint prefix)."""
        if source.type not in ("image", ""):
            raise BadRequest(f"Instance source type {source.type!r} is not supported yet")
        if source.server:
            raise BadRequest("Remote image sources are not supported: import the image first")
        fingerprint = source.fingerprint
        if not fingerprint:
            if not source.alias:
                if source.properties:
                    raise BadRequest("Image selection by properties is not supported yet")
                raise BadRequest("No image alias or fingerprint given for the instance source")
            alias = await self._ask_image(
                subjects.IMAGE_ALIASES_GET, image_wire.AliasRef(name=source.alias), meta
            )
            fingerprint = str(alias["target"])
        ref = image_wire.ImageRef(fingerprint=fingerprint[:64])
        return await self._ask_image(subjects.IMAGES_GET, ref, meta)

    async def _ask_image(self, subject: str, body: Any, meta: RequestMeta) -> dict[str, Any]:
        try:
            result = await self.bus.request(subject, body.model_dump(), meta)
        except NotFound:
            raise NotFound("Image not found") from None
        return ObjectResult.model_validate(result).object

    # -- storage ---------------------------------------------------------------------------

    async def _storage(self, verb: str, body: Any, timeout: float = VOLUME_TIMEOUT) -> Any:
        subject = subjects.storage(verb, self.node)
        return await self.bus.request(subject, body.model_dump(), RequestMeta(), timeout=timeout)

    async def create_volume(
        self, pool: str, name: str, fingerprint: str, idmap: storage_wire.VolumeIdMap | None
    ) -> storage_wire.MountedVolume:
        """Clone the instance's volume from its image and mount it."""
        body = storage_wire.InstanceVolumeCreate(
            pool=pool, name=name, fingerprint=fingerprint, idmap=idmap, mount=True
        )
        result = await self._storage(
            subjects.STORAGE_INSTANCE_VOLUME_CREATE, body, timeout=IMAGE_VOLUME_TIMEOUT
        )
        return storage_wire.MountedVolume.model_validate(result)

    async def mount_volume(self, pool: str, name: str) -> storage_wire.MountedVolume:
        ref = storage_wire.InstanceVolumeRef(pool=pool, name=name)
        result = await self._storage(subjects.STORAGE_INSTANCE_VOLUME_MOUNT, ref)
        return storage_wire.MountedVolume.model_validate(result)

    async def unmount_volume(self, pool: str, name: str) -> None:
        ref = storage_wire.InstanceVolumeRef(pool=pool, name=name)
        await self._storage(subjects.STORAGE_INSTANCE_VOLUME_UNMOUNT, ref)

    async def delete_volume(self, pool: str, name: str) -> None:
        ref = storage_wire.InstanceVolumeRef(pool=pool, name=name)
        await self._storage(subjects.STORAGE_INSTANCE_VOLUME_DELETE, ref)

    async def pools(self) -> list[str]:
        subject = subjects.storage(subjects.STORAGE_POOL_LIST, self.node)
        return list(await self.bus.request(subject, ListQuery().model_dump(), RequestMeta()))

    async def instance_volumes(self, pool: str) -> list[str]:
        """Host names of the pool's instance volumes."""
        query = storage_wire.InstanceVolumeList(pool=pool)
        return list(await self._storage(subjects.STORAGE_INSTANCE_VOLUME_LIST, query))

    async def volume_usage(
        self, refs: list[storage_wire.InstanceVolumeRef]
    ) -> list[storage_wire.InstanceVolumeUsage]:
        """What these instance volumes hold of their own, in one request (volumes the storage
        service cannot count are left out); ``Unavailable`` past ``USAGE_TIMEOUT``."""
        query = storage_wire.InstanceVolumeUsageQuery(volumes=refs)
        result = await self._storage(
            subjects.STORAGE_INSTANCE_VOLUME_USAGE, query, timeout=USAGE_TIMEOUT
        )
        return storage_wire.InstanceVolumeUsages.model_validate(result).volumes

    # -- networks --------------------------------------------------------------------------

    async def _network(self, verb: str, body: Any) -> Any:
        subject = subjects.network(verb, self.node)
        try:
            return await self.bus.request(
                subject, body.model_dump(), RequestMeta(), timeout=NETWORK_TIMEOUT
            )
        except Unavailable as exc:
            raise Unavailable(
                f"The network service of node {self.node} does not answer ({exc.message})"
            ) from None

    async def network(self, name: str) -> dict[str, Any] | None:
        """The LXD network object, or None when the network does not exist."""
        try:
            result = await self._network(subjects.NETWORK_GET, ByName(name=name))
        except NotFound:
            return None
        return ObjectResult.model_validate(result).object

    async def nic_plug(self, plug: network_wire.NicPlug) -> network_wire.NicPlugged:
        """Join a nic to its network (its DHCP host entry); the bridge to link it to."""
        result = await self._network(subjects.NETWORK_NIC_PLUG, plug)
        return network_wire.NicPlugged.model_validate(result)

    async def nic_unplug(self, network: str, hwaddr: str) -> None:
        body = network_wire.NicUnplug(network=network, hwaddr=hwaddr)
        await self._network(subjects.NETWORK_NIC_UNPLUG, body)
