"""Image export: the blobs stream back over NATS to the gateway, which writes them to the
HTTP response (one part for a unified image, metadata then rootfs for a split one).

The gateway subscribes a receiver per file on ``subjects.stream(<export_id>, i)`` first, then
asks ``IMAGES_EXPORT_BEGIN``; this replica answers with the file list and sends the files in
order, each acknowledged chunk by chunk (so a slow client slows the sender, nothing piles up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from schemas import images as wire
from schemas import subjects
from schemas.bytestream import send_stream
from schemas.messages import RequestMeta
from services.common.endpoints import EndpointGroup
from services.image.images.context import ImageContext
from services.image.images.state import ImageState, blob_keys

log = logging.getLogger(__name__)


def export_names(state: ImageState) -> list[tuple[str, str]]:
    """(multipart field, file name) of each file, as LXD names them (a split image keeps
    the rootfs file's name; its metadata becomes ``meta-<name>``)."""
    name = state.filename or state.fingerprint
    if not state.split:
        return [(name, name)]
    return [("metadata", f"meta-{name}"), ("rootfs", name)]


class ExportHandlers:
    """Sends image files to whoever asked, one stream per file."""

    def __init__(self, ctx: ImageContext) -> None:
        self.c = ctx
        self.tasks: set[asyncio.Task[None]] = set()

    def register(self, group: EndpointGroup) -> None:
        group.add(subjects.IMAGES_EXPORT_BEGIN, wire.ExportBegin, self.begin)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(BaseException):
                await task

    async def begin(self, body: wire.ExportBegin, meta: RequestMeta) -> tuple[Any, int]:
        seq = await self.c.fresh()
        project_id, _ = self.c.home(meta)
        state = self.c.projection.resolve(project_id, body.fingerprint)
        keys = blob_keys(state.fingerprint, state.split)
        files = []
        for key, (field, filename) in zip(keys, export_names(state), strict=True):
            info = await self.c.blobs.stat(key)
            files.append(wire.ExportFile(field=field, filename=filename, size=info.size))
        task = asyncio.create_task(self._send(body.export_id, keys))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        ticket = wire.ExportTicket(fingerprint=state.fingerprint, files=files)
        return ticket.model_dump(), seq

    async def _send(self, export_id: str, keys: list[str]) -> None:
        try:
            for part, key in enumerate(keys):
                subject = subjects.stream(export_id, part)
                reply = await send_stream(self.c.nc, subject, self.c.blobs.get(key))
                reply.unwrap()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The receiver (the gateway) went away or gave up: nothing to clean up here.
            log.info("export %s ended early: %s", export_id, exc)
