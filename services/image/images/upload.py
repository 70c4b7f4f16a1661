"""Image import: the upload streams in over NATS, spools to disk, then an LXD operation
validates it, stores the blobs and records ``image-created``.

The gateway asks ``IMAGES_UPLOAD_BEGIN``; this replica subscribes one
:class:`~schemas.bytestream.StreamReceiver` per part (1 unified, 2 split) and answers with the
upload id. Parts spool to ``<spool_dir>/upload-<pid>-<id>-<part>`` while being hashed (never
held in memory). The final reply of the last part is the import operation, which then runs
here: ``inspect_image`` (a corrupt, truncated or hostile tarball fails it with the library's
message and leaves nothing), blob puts, and the event. Spool files are always removed; those
of a killed process are removed at the next start (their pid is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas import images as wire
from schemas import subjects
from schemas.bytestream import StreamReceiver
from schemas.catalog import OperationResult
from schemas.errors import BadRequest, Conflict, WarrenError
from schemas.lxd.images import ZERO_TIME
from schemas.messages import Reply, RequestMeta
from services.common.aggregate import decide_and_append
from services.common.endpoints import EndpointGroup
from services.common.imagefiles.tarball import ImageInfo, inspect_image
from services.common.operations import RunningOperation, lxd_time
from services.image.images import image as agg
from services.image.images.context import ImageContext
from services.image.images.orphans import answer_while_running
from services.image.images.state import ImageState, blob_keys, image_id

log = logging.getLogger(__name__)


def _time(epoch: int | None) -> str:
    if not epoch:
        return ZERO_TIME
    return lxd_time(datetime.fromtimestamp(epoch, UTC))


def sweep_spool(spool_dir: Path) -> int:
    """Remove spool files whose process is gone (killed mid-upload); return a count."""
    removed = 0
    for path in spool_dir.glob("upload-*"):
        try:
            pid = int(path.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def spool(receiver: StreamReceiver, path: Path) -> str:
    """Write the stream to ``path``, hashing as it goes; the sha256."""
    digest = hashlib.sha256()
    handle = await asyncio.to_thread(open, path, "xb")
    try:
        async for chunk in receiver:
            digest.update(chunk)
            await asyncio.to_thread(handle.write, chunk)
    finally:
        await asyncio.to_thread(handle.close)
    return digest.hexdigest()


class UploadHandlers:
    """Receives uploads and runs the import operations of one service process."""

    def __init__(self, ctx: ImageContext) -> None:
        self.c = ctx
        self.tasks: set[asyncio.Task[None]] = set()

    def register(self, group: EndpointGroup) -> None:
        group.add(subjects.IMAGES_UPLOAD_BEGIN, wire.UploadBegin, self.begin)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(BaseException):
                await task

    async def begin(self, body: wire.UploadBegin, meta: RequestMeta) -> tuple[Any, int]:
        await self.c.fresh()
        self.c.home(meta)  # an unknown project fails now, before any byte moves
        upload_id = str(uuid.uuid4())
        parts = 2 if body.split else 1
        receivers = []
        for part in range(parts):
            rx = StreamReceiver(self.c.nc, subjects.stream(upload_id, part), self.c.idle_timeout)
            receivers.append(await rx.start())
        task = asyncio.create_task(self._receive(upload_id, body, meta, receivers))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return wire.UploadTicket(upload_id=upload_id, parts=parts).model_dump(), 0

    async def _receive(
        self,
        upload_id: str,
        body: wire.UploadBegin,
        meta: RequestMeta,
        receivers: list[StreamReceiver],
    ) -> None:
        self.c.spool_dir.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        hashes: list[str] = []
        handed_over = False
        try:
            for part, rx in enumerate(receivers):
                path = self.c.spool_dir / f"upload-{os.getpid()}-{upload_id}-{part}"
                files.append(path)
                hashes.append(await spool(rx, path))
                if part < len(receivers) - 1:
                    await rx.finish(Reply())

            filename = receivers[-1].trailer.get("filename") or body.filename

            async def work(op: RunningOperation) -> dict[str, Any] | None:
                try:
                    return await self._import(body, meta, files, hashes, filename)
                finally:
                    _remove(files)

            op = await self.c.operations.start(
                work,
                description="Downloading image",
                may_cancel=False,
                meta=meta,
                project=meta.project,
                operation_id=body.operation_id,
            )
            handed_over = True
            await answer_while_running(self.c.nc, op)
            result = OperationResult(operation=op.object).model_dump()
            seq = await self.c.store.last_seq()  # covers the operation-created event
            await receivers[-1].finish(Reply(result=result, seq=seq))
        except WarrenError as exc:
            for rx in receivers:
                await rx.fail(exc)
        except asyncio.CancelledError:
            for rx in receivers:
                await rx.fail(WarrenError("the image service stopped during the upload", 503))
            raise
        except Exception as exc:
            log.exception("upload %s failed", upload_id)
            for rx in receivers:
                await rx.fail(WarrenError(f"upload failed: {exc}"))
        finally:
            if not handed_over:
                _remove(files)
            for rx in receivers:
                await rx.close()

    async def _import(
        self,
        body: wire.UploadBegin,
        meta: RequestMeta,
        files: list[Path],
        hashes: list[str],
        filename: str,
    ) -> dict[str, Any]:
        rootfs = files[1] if body.split else None
        info: ImageInfo = await asyncio.to_thread(inspect_image, files[0], rootfs)
        fp = info.fingerprint
        if body.fingerprint and body.fingerprint.lower() != fp:
            raise BadRequest(f"Fingerprints don't match, got {fp} expected {body.fingerprint}")
        await self.c.fresh()
        project_id, project = self.c.home(meta)
        agg_id = image_id(project_id, fp)
        if agg.exists(self.c.projection.images.get(agg_id)):
            raise Conflict("Image with same fingerprint already exists")
        keys = blob_keys(fp, body.split)
        stored_before = self.c.projection.fingerprint_in_use(fp)
        try:
            for key, path, sha in zip(keys, files, hashes, strict=True):
                handle = await asyncio.to_thread(open, path, "rb")
                try:
                    await self.c.blobs.put(key, handle, expected_sha256=sha)
                finally:
                    handle.close()
            state = self._state(agg_id, project_id, body, info, filename)

            async def decision() -> tuple[list[Any], int]:
                await self.c.fresh()
                current = self.c.projection.images.get(agg_id)
                command = agg.CreateImage(state, project, meta, self.c.node)
                return agg.decide(current, command), self.c.projection.seq_of(agg_id)

            await decide_and_append(self.c.store, decision)
        except BaseException:
            await self.c.fresh()
            if not stored_before and not self.c.projection.fingerprint_in_use(fp):
                for key in keys:
                    with contextlib.suppress(Exception):
                        await self.c.blobs.delete(key)
            raise
        return {"fingerprint": fp, "size": info.size}

    def _state(
        self, agg_id: str, project_id: str, body: wire.UploadBegin, info: ImageInfo, filename: str
    ) -> ImageState:
        metadata = info.metadata
        return ImageState(
            id=agg_id,
            project_id=project_id,
            fingerprint=info.fingerprint,
            architecture=metadata.canonical_architecture,
            size=info.size,
            filename=filename,
            split=body.split,
            properties={**metadata.properties, **body.properties},
            public=body.public,
            expires_at=_time(metadata.expiry_date),
            created_at=_time(metadata.creation_date),
            uploaded_at=lxd_time(datetime.now(UTC)),
        )


def _remove(files: list[Path]) -> None:
    for path in files:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
