"""The ``local`` blob store: one directory on this machine (the single-machine default).

Key ``a/b`` is the file ``<root>/a/b``. A put writes a hidden temporary file in the target's
directory, fsyncs it and renames it over the target, so readers see the old object or the new
one, never a part. The sha256 rides along in an extended attribute set before the rename.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from schemas.errors import Conflict, NotFound, Unavailable, WarrenError

from .base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobSource,
    BlobStore,
    Capabilities,
    check_sha256,
    in_thread_to_the_end,
    iter_source,
)
from .keys import check_key, check_prefix
from .settings import BlobSettings

_XATTR = "user.warren.sha256"


class LocalBlobStore(BlobStore):
    """Blobs as files under ``root``."""

    capabilities = Capabilities(
        presigned_urls=False, server_side_copy=True, shared_between_nodes=False
    )

    def __init__(self, root: Path | str, *, chunk_size: int = CHUNK_SIZE) -> None:
        self.root = Path(root)
        self.chunk_size = chunk_size

    @classmethod
    def from_settings(cls, settings: BlobSettings) -> LocalBlobStore:
        """The store configured by ``settings`` (WARREN_BLOB_DIR, default $WARREN_DIR/blobs)."""
        return cls(settings.local_root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(
        self, key: str, source: BlobSource, *, expected_sha256: str | None = None
    ) -> BlobInfo:
        path = self._path(key)
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        handle = await asyncio.to_thread(_create, temp)
        digest = hashlib.sha256()
        size = 0
        try:
            async for chunk in iter_source(source, self.chunk_size):
                await in_thread_to_the_end(_write, handle, digest, chunk)
                size += len(chunk)
            sha256 = digest.hexdigest()
            check_sha256(expected_sha256, sha256)
            await in_thread_to_the_end(_commit, handle, temp, path, sha256)
        except BaseException:
            # Synchronous on purpose: it must also run when the task was cancelled (and no
            # thread is using the file any more: in_thread_to_the_end waited for it).
            handle.close()
            temp.unlink(missing_ok=True)
            raise
        return BlobInfo(key=key, size=size, sha256=sha256)

    async def get(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        path = self._path(key)
        handle = await asyncio.to_thread(_open_existing, path, key)
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def stat(self, key: str) -> BlobInfo:
        path = self._path(key)
        return await asyncio.to_thread(_stat, path, key)

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await asyncio.to_thread(_unlink, path)

    async def copy(self, source_key: str, dest_key: str) -> BlobInfo:
        # A hard link: objects are never modified in place (a put renames a new file over the
        # old one), so the two names can share one inode, xattr included.
        source, dest = self._path(source_key), self._path(dest_key)
        info = await self.stat(source_key)
        await asyncio.to_thread(_link, source, dest, source_key)
        return info.model_copy(update={"key": dest_key})

    async def sweep_temporary(self, older_than: timedelta = timedelta(hours=1)) -> int:
        cutoff = time.time() - older_than.total_seconds()
        return await asyncio.to_thread(self._sweep, cutoff)

    def _sweep(self, cutoff: float) -> int:
        removed = 0
        for dirpath, _, filenames in os.walk(self.root):
            for name in filenames:
                path = Path(dirpath, name)
                if not (name.startswith(".") and name.endswith(".part")):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime <= cutoff:
                        path.unlink()
                        removed += 1
        return removed

    async def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> list[str]:
        # Walk only the directory the prefix points into, not the whole store.
        base = self.root / prefix.rpartition("/")[0]
        keys = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [name for name in dirnames if not name.startswith(".")]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith("."):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)


def _translate(exc: OSError, key: str) -> WarrenError:
    """An OSError from the filesystem as the error a caller can act on."""
    if exc.errno in (errno.ENOENT, errno.EISDIR):
        return NotFound(f"blob {key} not found")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return Conflict(f"blob key {key} runs through an existing blob")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO):
        return Unavailable(f"blob store cannot write {key}: {exc.strerror}")
    return WarrenError(f"blob store error on {key}: {exc}")


def _create(temp: Path) -> BinaryIO:
    try:
        temp.parent.mkdir(parents=True, exist_ok=True)
        return open(temp, "xb", buffering=0)  # closed by put()
    except OSError as exc:
        raise _translate(exc, temp.name) from exc


def _write(handle: BinaryIO, digest: hashlib._Hash, chunk: bytes) -> None:
    digest.update(chunk)
    view = memoryview(chunk)
    try:
        while view:
            # A raw file may write less than asked.
            written = handle.write(view)
            view = view[written:]
    except OSError as exc:
        raise _translate(exc, Path(handle.name).name) from exc


def _commit(handle: BinaryIO, temp: Path, path: Path, sha256: str) -> None:
    try:
        _finish(handle, temp, path, sha256)
    except IsADirectoryError as exc:
        # S3 can hold both "a" and "a/b"; a directory cannot.
        raise Conflict(f"blob key {path.name} is a prefix of other blobs") from exc
    except OSError as exc:
        raise _translate(exc, path.name) from exc


def _finish(handle: BinaryIO, temp: Path, path: Path, sha256: str) -> None:
    os.fsync(handle.fileno())
    try:
        os.setxattr(handle.fileno(), _XATTR, sha256.encode())
    except OSError as exc:
        # A filesystem without user xattrs still stores blobs; stat() then reports no sha256.
        if exc.errno not in (errno.ENOTSUP, errno.EPERM):
            raise
    handle.close()
    os.replace(temp, path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _link(source: Path, dest: Path, key: str) -> None:
    temp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, temp)
        try:
            os.replace(temp, dest)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    except IsADirectoryError as exc:
        raise Conflict(f"blob key {dest.name} is a prefix of other blobs") from exc
    except OSError as exc:
        raise _translate(exc, key) from exc


def _open_existing(path: Path, key: str) -> BinaryIO:
    try:
        return open(path, "rb")  # closed by get()
    except OSError as exc:
        raise _translate(exc, key) from exc


def _stat(path: Path, key: str) -> BlobInfo:
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise NotFound(f"blob {key} not found")
    except OSError as exc:
        raise _translate(exc, key) from exc
    try:
        sha256: str | None = os.getxattr(path, _XATTR).decode()
    except OSError:
        sha256 = None
    return BlobInfo(key=key, size=size, sha256=sha256)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except (IsADirectoryError, NotADirectoryError):
        pass
    except OSError as exc:
        raise _translate(exc, path.name) from exc
