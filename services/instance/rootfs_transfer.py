"""Moving a file's content in and out of an instance's root filesystem.

:class:`RootFS <services.instance.rootfs_files.RootFS>` opens these: a :class:`FileReader`
reads a regular file in chunks, a :class:`FileWriter` writes one and puts it in place at
commit. Both act on fds and on (pinned parent directory, plain name) pairs only, and run every
blocking call in ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

from schemas.bytestream import CHUNK_SIZE
from schemas.errors import WarrenError
from services.instance.rootfs_paths import translated

T = TypeVar("T")

#: Enters the context in which names change as the container's root (RootFS._acting).
Acting = Callable[[], contextlib.AbstractContextManager[None]]


async def in_thread(func: Callable[..., T], *args: object) -> T:
    return await asyncio.to_thread(func, *args)


@dataclass
class Target:
    """A name in a pinned parent directory: where a change happens."""

    parent_fd: int
    name: str
    path: str  # the container path (after following final symlinks, when asked to)
    st: os.stat_result | None  # lstat of the name; None when absent

    def close(self) -> None:
        os.close(self.parent_fd)


class FileReader:
    """The content of one regular file, read in chunks off the event loop."""

    def __init__(self, fd: int, path: str) -> None:
        self._fd: int | None = fd
        self.path = path

    def read_some(self, limit: int) -> bytes:
        if self._fd is None:
            return b""
        parts, left = [], limit
        while left > 0:
            with translated(self.path):
                data = os.read(self._fd, min(left, CHUNK_SIZE))
            if not data:
                break
            parts.append(data)
            left -= len(data)
        return b"".join(parts)

    async def chunks(self, size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The content, ``size`` bytes at a time; the reader is closed at the end."""
        try:
            while True:
                data = await in_thread(self.read_some, size)
                if not data:
                    return
                yield data
        finally:
            await self.close()

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class FileWriter:
    """A file being written: :meth:`write` chunks, then :meth:`commit` or :meth:`abort`."""

    def __init__(
        self,
        acting: Acting,
        target: Target,
        fd: int,
        temp: str | None,
        owner: tuple[int, int],
        mode: int,
        created: bool,
    ) -> None:
        self._acting = acting
        self._target = target
        self._fd: int | None = fd
        self._temp = temp
        self._owner = owner
        self._mode = mode
        self._created = created
        self._lock = threading.Lock()
        self.path = target.path
        self.written = 0

    async def write(self, data: bytes) -> None:
        await in_thread(self._write, data)

    async def commit(self) -> None:
        """Apply ownership and mode, and put the file in place."""
        await in_thread(self._commit)

    async def abort(self) -> None:
        """Drop what was written (a new file goes away; append keeps what was appended)."""
        await in_thread(self._abort)

    # The same, blocking, for a caller already in a worker thread.

    def write_now(self, data: bytes) -> None:
        self._write(data)

    def commit_now(self) -> None:
        self._commit()

    def abort_now(self) -> None:
        self._abort()

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self._fd is None:
                raise WarrenError(f"Writing {self.path}: the file is closed")
            view = memoryview(data)
            with translated(self.path):
                while view:
                    count = os.write(self._fd, view)
                    view = view[count:]
                    self.written += count

    def _commit(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is None:
                raise WarrenError(f"Writing {self.path}: the file is closed")
            target = self._target
            try:
                with translated(self.path), self._acting():
                    # chown first: it clears set-id bits that chmod then sets.
                    os.fchown(fd, *self._owner)
                    os.fchmod(fd, self._mode)
                    os.close(fd)
                    fd = -1
                    if self._temp is not None:
                        os.rename(
                            self._temp,
                            target.name,
                            src_dir_fd=target.parent_fd,
                            dst_dir_fd=target.parent_fd,
                        )
                        self._temp = None
            except BaseException:
                if fd >= 0:
                    os.close(fd)
                with self._acting():
                    self._drop_temp()
                raise
            finally:
                target.close()

    def _abort(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is None:
                return
            os.close(fd)
            appended_new = self._temp is None and self._created
            with self._acting():
                self._drop_temp()
                if appended_new:
                    # A file made by an append that failed.
                    with contextlib.suppress(OSError):
                        os.unlink(self._target.name, dir_fd=self._target.parent_fd)
            self._target.close()

    def _drop_temp(self) -> None:
        if self._temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temp, dir_fd=self._target.parent_fd)
            self._temp = None
