"""Image volumes made from the blob store: fetch an image's files, unpack them into a new
image volume of a pool, once per (pool, image) however many ask at the same time.

The image service keeps every image in the blob store; a node unpacks it once into a local
image volume and instances are copy-on-write clones of that (DESIGN.md, section 7). The files
are downloaded into a private directory under ``$WARREN_DIR/tmp/storage-images/<node>/`` (on
disk, never in memory), checked and unpacked with the shared safe unpacker
(:func:`services.common.imagefiles.tarball.unpack_image`) into the pending volume the driver
hands out, and the volume is committed only if all of that succeeded: a failure leaves no
half volume (``build_image_volume`` aborts it) and no downloaded file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from schemas.errors import Conflict, NotFound, WarrenError
from services.common.blobs import BlobStore
from services.common.blobs.base import in_thread_to_the_end
from services.common.imagefiles.tarball import unpack_image
from services.storage.drivers import StorageDriver
from services.storage.drivers.base import StorageError, check_fingerprint

log = logging.getLogger(__name__)

#: Where downloads go, below ``$WARREN_DIR`` (one directory per node: only this node's
#: storage service uses it, so whatever it holds at start-up is a dead process's leftover).
WORK_DIR = Path("tmp") / "storage-images"


def image_blob_keys(fingerprint: str, split: bool) -> list[str]:
    """Where the image service keeps an image's files in the blob store.

    A restatement of ``services/image/images/state.py::blob_keys`` (services never import each
    other; the key layout is part of what they share): a unified image is ``images/<fp>``, a
    split one ``images/<fp>.meta`` plus ``images/<fp>.rootfs``.
    """
    base = f"images/{fingerprint}"
    return [f"{base}.meta", f"{base}.rootfs"] if split else [base]


def _not_found(fingerprint: str) -> NotFound:
    return NotFound(f"Image {fingerprint} not found in the blob store")


def _unpack_into(volume: Path, files: list[Path], fingerprint: str) -> None:
    """Unpack the image files into the (existing, empty) pending volume directory ``volume``.

    ``unpack_image`` wants a target that does not exist yet: it unpacks into a fresh
    subdirectory (on the volume's own filesystem), whose entries are then renamed up.
    """
    staging = volume / ".unpacked"
    metadata, rootfs = files[0], files[1] if len(files) > 1 else None
    try:
        info = unpack_image(staging, metadata, rootfs, allow_devices=False)
    except OSError as exc:
        raise StorageError(f"unpacking image {fingerprint}: {exc}") from exc
    if info.fingerprint != fingerprint:
        raise WarrenError(
            f"Image {fingerprint} in the blob store is corrupt: its files have fingerprint "
            f"{info.fingerprint}"
        )
    for entry in os.listdir(staging):
        os.rename(staging / entry, volume / entry)
    os.rmdir(staging)


class ImageVolumes:
    """Makes sure a pool holds an image's volume, unpacking it from the blob store once."""

    def __init__(self, blobs: BlobStore, work_dir: Path) -> None:
        self.blobs = blobs
        self.work_dir = Path(work_dir)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    @classmethod
    def for_node(cls, blobs: BlobStore, warren_dir: Path, node: str) -> ImageVolumes:
        return cls(blobs, Path(warren_dir) / WORK_DIR / node)

    def sweep(self) -> int:
        """Remove downloads a dead process left (blocking; call at start-up, before serving)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        removed = 0
        for entry in os.scandir(self.work_dir):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed += 1
        return removed

    async def ensure(self, pool_id: str, driver: StorageDriver, fingerprint: str) -> bool:
        """The image's volume exists in the pool afterwards; True if it was made now.

        Concurrent calls for the same pool and image wait for one another: the first unpacks,
        the others then find the volume there (if the first failed, the next one tries again).
        """
        check_fingerprint(fingerprint)
        lock = self._locks.setdefault((pool_id, fingerprint), asyncio.Lock())
        async with lock:
            if await _has_image(driver, fingerprint):
                return False
            return await self._build(driver, fingerprint)

    async def _build(self, driver: StorageDriver, fingerprint: str) -> bool:
        started = time.monotonic()
        tmp = Path(await asyncio.to_thread(_make_tmp, self.work_dir, fingerprint))
        try:
            files = await self._download(fingerprint, tmp)
            filling = False
            try:
                async with driver.build_image_volume(fingerprint) as path:
                    filling = True
                    await in_thread_to_the_end(_unpack_into, path, files, fingerprint)
            except Conflict:
                if filling:
                    raise
                return False  # made meanwhile by someone else (begin found it committed)
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp, True)
        log.info(
            "image %s unpacked into pool %s in %.2fs",
            fingerprint[:12],
            driver.pool,
            time.monotonic() - started,
        )
        return True

    async def _download(self, fingerprint: str, into: Path) -> list[Path]:
        """The image's files (a unified tarball, or metadata then rootfs), downloaded."""
        for split in (False, True):
            keys = image_blob_keys(fingerprint, split)
            if await self.blobs.exists(keys[0]):
                break
        else:
            raise _not_found(fingerprint)
        files = [into / key.rsplit("/", 1)[-1] for key in keys]
        try:
            for key, file in zip(keys, files, strict=True):
                await self.blobs.download(key, file)
        except NotFound:
            raise _not_found(fingerprint) from None
        return files


def _make_tmp(work_dir: Path, fingerprint: str) -> str:
    work_dir.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix=f"{fingerprint[:12]}-", dir=work_dir)


async def _has_image(driver: StorageDriver, fingerprint: str) -> bool:
    volumes = await driver.list_volumes()
    return any(v.type == "image" and v.name == fingerprint for v in volumes)
