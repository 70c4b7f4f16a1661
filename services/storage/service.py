"""Wiring of the storage service (node-scoped): pools, volumes, start-up repairs."""

from __future__ import annotations

import asyncio
import logging
import os

from schemas.errors import WarrenError
from services.common.blobs import BlobStore, open_blob_store
from services.common.runtime import ServiceRuntime
from services.storage.pools import defaults, history
from services.storage.pools.handlers import PoolHandlers, Pools
from services.storage.pools.host import HostPools
from services.storage.pools.image_volumes import ImageVolumes
from services.storage.pools.instance_volumes import InstanceVolumeHandlers
from services.storage.pools.projection import PoolProjection
from services.storage.pools.volume_usage import VolumeUsageHandlers
from services.storage.pools.volumes import VolumeHandlers

log = logging.getLogger(__name__)

NAME = "storage"


async def setup(runtime: ServiceRuntime, blobs: BlobStore | None = None) -> Pools:
    """Register the storage endpoints on a connected runtime (``runtime.start()`` follows).

    ``blobs``: where images are read from (default: the store the environment configures, as
    for the image service, with ``$WARREN_DIR`` taken from the runtime's settings).
    """
    assert runtime.bus is not None and runtime.store is not None
    settings = runtime.settings
    if blobs is None:
        blobs = open_blob_store(env={**os.environ, "WARREN_DIR": str(settings.warren_dir)})
    runtime.on_stop(blobs.close)
    images = ImageVolumes.for_node(blobs, settings.warren_dir, settings.node)
    if removed := await asyncio.to_thread(images.sweep):
        log.info("removed %d image downloads a dead storage service left", removed)
    host = HostPools(settings.warren_dir)
    try:
        await defaults.ensure_default_pool(runtime.store, host, settings.node)
    except WarrenError as exc:
        # Serve the other pools anyway; the next start tries again.
        log.error("could not create the default storage pool: %s", exc.message)
    projection = PoolProjection()
    runner = runtime.add_projection(projection)
    pools = Pools(runtime.store, runner, projection, host, settings.node)
    PoolHandlers(pools).register(runtime.endpoints)
    VolumeHandlers(pools).register(runtime.endpoints)
    InstanceVolumeHandlers(pools, images).register(runtime.endpoints)
    VolumeUsageHandlers(pools).register(runtime.endpoints)
    history.register(pools, runtime.endpoints)
    target = await runtime.store.last_seq()
    task = asyncio.create_task(_reconcile_when_caught_up(pools, target, runtime))
    runtime.on_stop(lambda: _cancel(task))
    return pools


async def _reconcile_when_caught_up(pools: Pools, target: int, runtime: ServiceRuntime) -> None:
    try:
        await pools.projection.wait_for(target, timeout=3600)
        await defaults.reconcile(
            pools.projection, pools.host, pools.node, runtime.settings.warren_dir
        )
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("start-up reconcile failed; it runs again at the next start")


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
