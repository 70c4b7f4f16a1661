"""Bus endpoints the instance service of this node calls to get instance root filesystems.

``schemas/storage.py`` ("volumes for instances") is the contract:

- ``image-volume-ensure``: the image's volume is in the pool afterwards (unpacked from the
  blob store once, see :mod:`.image_volumes`); reply ``ImageVolumeReady``;
- ``instance-volume-create``: the image volume is ensured, then a copy-on-write clone named
  after the instance is made (``Conflict`` if it exists); ``None``, or with ``mount`` the
  clone mounted and the ``MountedVolume`` (a create needs it next: one round trip, not two);
- ``instance-volume-mount``: mounted (idempotent), reply ``MountedVolume``; ``NotFound`` for
  an unknown volume;
- ``instance-volume-unmount`` / ``instance-volume-delete``: ``None``, idempotent (a volume
  that is not there is fine); the driver's delete unmounts first;
- ``image-volume-templates``: the image volume's templates (:mod:`.image_templates`), reply
  ``ImageTemplates``; ``NotFound`` without that image volume.

These are host effects only, not recorded in the log: the instance service records the
instance's fate, and its volumes follow it. An unknown pool is ``NotFound("Storage pool not
found")``, an unavailable one the 503 of :meth:`HostPools.mounted`.

Every endpoint is ``concurrent``: an unpack of a big image must not hold up the requests
behind it (mounts of other instances, or creates waiting for that same image). Requests on the
same volume are serialised by the driver's per-volume locks, ensures of the same image by
:class:`ImageVolumes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas import storage as wire
from schemas import subjects
from schemas.errors import Conflict, NotFound
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.common.revert import Reverter
from services.storage.drivers import StorageDriver
from services.storage.drivers.base import check_fingerprint, check_volume_name, host
from services.storage.idmap import IdMap
from services.storage.pools.handlers import Pools
from services.storage.pools.image_templates import read_templates
from services.storage.pools.image_volumes import ImageVolumes
from services.storage.pools.state import PoolState


class InstanceVolumeHandlers:
    """The image and instance volume endpoints of one storage service process."""

    def __init__(self, pools: Pools, images: ImageVolumes) -> None:
        self.p = pools
        self.images = images

    def register(self, group: EndpointGroup) -> None:
        node = self.p.node
        for verb, model, handler in (
            (subjects.STORAGE_IMAGE_VOLUME_ENSURE, wire.ImageVolumeEnsure, self.ensure_image),
            (subjects.STORAGE_INSTANCE_VOLUME_CREATE, wire.InstanceVolumeCreate, self.create),
            (subjects.STORAGE_INSTANCE_VOLUME_MOUNT, wire.InstanceVolumeRef, self.mount),
            (subjects.STORAGE_INSTANCE_VOLUME_UNMOUNT, wire.InstanceVolumeRef, self.unmount),
            (subjects.STORAGE_INSTANCE_VOLUME_DELETE, wire.InstanceVolumeRef, self.delete),
            (subjects.STORAGE_INSTANCE_VOLUME_LIST, wire.InstanceVolumeList, self.host_names),
            (subjects.STORAGE_IMAGE_VOLUME_TEMPLATES, wire.ImageTemplatesQuery, self.templates),
        ):
            group.add(subjects.storage(verb, node), model, handler, concurrent=True)

    async def _pool(self, name: str) -> tuple[PoolState, StorageDriver, int]:
        """The pool's state and mounted driver, and the stream sequence they reflect."""
        seq = await self.p.fresh()
        state = self.p.pool_or_404(name)
        return state, await self.p.host.mounted(state), seq

    async def ensure_image(
        self, body: wire.ImageVolumeEnsure, meta: RequestMeta
    ) -> tuple[Any, int]:
        check_fingerprint(body.fingerprint)
        state, driver, seq = await self._pool(body.pool)
        created = await self.images.ensure(state.id, driver, body.fingerprint)
        return wire.ImageVolumeReady(
            fingerprint=body.fingerprint, created=created
        ).model_dump(), seq

    async def templates(
        self, body: wire.ImageTemplatesQuery, meta: RequestMeta
    ) -> tuple[Any, int]:
        check_fingerprint(body.fingerprint)
        _, driver, seq = await self._pool(body.pool)
        directory = await driver.image_volume_dir(body.fingerprint)
        return (await host(read_templates, directory)).model_dump(), seq

    async def create(self, body: wire.InstanceVolumeCreate, meta: RequestMeta) -> tuple[Any, int]:
        check_volume_name(body.name)
        check_fingerprint(body.fingerprint)
        state, driver, seq = await self._pool(body.pool)
        # Refused before any unpack (the driver checks again, under its volume lock).
        if await driver.has_instance_volume(body.name):
            raise Conflict(
                f"Storage volume container/{body.name} already exists in pool {state.name}"
            )
        await self.images.ensure(state.id, driver, body.fingerprint)
        idmap = IdMap(body.idmap.host_base, body.idmap.count) if body.idmap else None
        await driver.create_instance_volume(body.name, body.fingerprint, idmap)
        if not body.mount:
            return None, seq
        async with Reverter() as revert:
            # A clone whose mount failed is removed: the caller was told the create failed.
            revert.add(lambda: driver.delete_instance_volume(body.name))
            rootfs = await driver.mount_instance_volume(body.name)
            revert.success()
        return self._mounted(driver, rootfs), seq

    async def mount(self, body: wire.InstanceVolumeRef, meta: RequestMeta) -> tuple[Any, int]:
        check_volume_name(body.name)
        _, driver, seq = await self._pool(body.pool)
        return self._mounted(driver, await driver.mount_instance_volume(body.name)), seq

    @staticmethod
    def _mounted(driver: StorageDriver, rootfs: Path) -> dict[str, Any]:
        shift = driver.capabilities.rootfs_shift
        return wire.MountedVolume(path=str(rootfs), rootfs_shift=shift).model_dump()

    async def unmount(self, body: wire.InstanceVolumeRef, meta: RequestMeta) -> tuple[Any, int]:
        check_volume_name(body.name)
        _, driver, seq = await self._pool(body.pool)
        try:
            await driver.unmount_instance_volume(body.name)
        except NotFound:
            pass  # nothing to unmount
        return None, seq

    async def host_names(
        self, body: wire.InstanceVolumeList, meta: RequestMeta
    ) -> tuple[Any, int]:
        _, driver, seq = await self._pool(body.pool)
        volumes = await driver.list_volumes()
        return sorted(v.name for v in volumes if v.type == "container"), seq

    async def delete(self, body: wire.InstanceVolumeRef, meta: RequestMeta) -> tuple[Any, int]:
        check_volume_name(body.name)
        _, driver, seq = await self._pool(body.pool)
        try:
            await driver.delete_instance_volume(body.name)  # unmounts, then deletes
        except NotFound:
            pass  # deleted already
        return None, seq
