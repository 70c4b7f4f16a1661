"""Wiring of the image service: projection, blob store, endpoints and start-up sweeps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from pathlib import Path

from services.common.blobs import BlobStore, open_blob_store
from services.common.operations import OperationRecorder
from services.common.runtime import ServiceRuntime
from services.image.images import history
from services.image.images.alias_handlers import AliasHandlers
from services.image.images.context import ImageContext
from services.image.images.export import ExportHandlers
from services.image.images.handlers import ImageHandlers
from services.image.images.orphans import fail_orphans
from services.image.images.projection import ImageProjection
from services.image.images.upload import UploadHandlers, sweep_spool

log = logging.getLogger(__name__)

NAME = "image"
#: WARREN_IMAGE_IDLE_TIMEOUT: seconds a transfer may stay silent before it is abandoned.
IDLE_TIMEOUT_ENV = "WARREN_IMAGE_IDLE_TIMEOUT"


async def setup(runtime: ServiceRuntime, blobs: BlobStore | None = None) -> ImageContext:
    """Register the image service on a connected runtime (``runtime.start()`` comes after)."""
    assert runtime.bus is not None and runtime.store is not None
    blobs = blobs or open_blob_store()
    projection = ImageProjection()
    runner = runtime.add_projection(projection)
    operations = OperationRecorder(runtime.bus.nc, runtime.store, runtime.settings.node)
    # One directory per host: replicas in other containers sharing WARREN_DIR have pids of
    # another namespace, so only this host's leftovers can be judged by pid.
    spool_dir = Path(runtime.settings.warren_dir) / "tmp" / "image-uploads" / socket.gethostname()
    spool_dir.mkdir(parents=True, exist_ok=True)
    removed = await asyncio.to_thread(sweep_spool, spool_dir)
    swept = await blobs.sweep_temporary()
    if removed or swept:
        log.info("removed %d abandoned upload files and %d blob leftovers", removed, swept)
    ctx = ImageContext(
        nc=runtime.bus.nc,
        store=runtime.store,
        runner=runner,
        projection=projection,
        blobs=blobs,
        operations=operations,
        node=runtime.settings.node,
        spool_dir=spool_dir,
        idle_timeout=float(os.environ.get(IDLE_TIMEOUT_ENV, "60")),
    )
    uploads = UploadHandlers(ctx)
    exports = ExportHandlers(ctx)
    ImageHandlers(ctx).register(runtime.endpoints)
    AliasHandlers(ctx).register(runtime.endpoints)
    history.register(ctx, runtime.endpoints)
    uploads.register(runtime.endpoints)
    exports.register(runtime.endpoints)
    target = await runtime.store.last_seq()
    ctx.startup = asyncio.create_task(_fail_orphans_when_caught_up(ctx, target))
    runtime.on_stop(lambda: _cancel(ctx.startup))
    runtime.on_stop(blobs.close)
    runtime.on_stop(operations.stop)
    runtime.on_stop(exports.stop)
    runtime.on_stop(uploads.stop)
    return ctx


async def _fail_orphans_when_caught_up(ctx: ImageContext, target: int) -> None:
    try:
        await ctx.projection.wait_for(target, timeout=3600)
        while True:
            failed, again = await fail_orphans(
                ctx.nc, ctx.store, ctx.projection.running, ctx.node, target
            )
            if failed:
                log.info("recorded %d operations of a dead image service as failed", failed)
            if again is None:
                return
            await asyncio.sleep(again + 0.1)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("could not check for orphaned image operations; the next start will")


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
