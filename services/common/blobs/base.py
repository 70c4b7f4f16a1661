"""The blob store interface: what images and backups need from a place to keep big files.

Every method is async; drivers run their blocking calls (file I/O, the minio client) in threads.
Content streams through in bounded chunks both ways, so a 1 GB image never sits in memory.
A put is all-or-nothing: until it returns, readers see the previous object (or none), and a put
that fails or is cancelled half-way leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from schemas.errors import BadRequest, NotFound, WarrenError

from .keys import check_key

T = TypeVar("T")

CHUNK_SIZE = 1024 * 1024

# What put() accepts: bytes, a blocking binary file, an object with ``async read(n)`` (such as
# aiohttp's StreamReader) or ``async read_chunk(n)`` (its multipart BodyPartReader), or any
# async iterable of byte chunks.
BlobSource = bytes | bytearray | memoryview | BinaryIO | AsyncIterable[bytes] | Any


@dataclass(frozen=True)
class Capabilities:
    """What a driver can do beyond the common interface; callers branch on these, not names."""

    # get_url() hands out a URL a client can download from without going through Warren.
    presigned_urls: bool = False
    # Copies happen inside the backend without the data crossing Warren's process.
    server_side_copy: bool = False
    # Every node of a cluster sees the same objects (no need to ship blobs between nodes).
    shared_between_nodes: bool = False


class BlobInfo(BaseModel):
    """A stored object: its key, size in bytes and sha256 (None if the backend lost it)."""

    model_config = ConfigDict(frozen=True)

    key: str
    size: int
    sha256: str | None = None


async def iter_source(source: BlobSource, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    """The content of ``source`` as byte chunks, reading at most ``chunk_size`` at a time.

    Chunks of an async iterable pass through as they come: their size is the producer's choice.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), chunk_size):
            yield bytes(view[start : start + chunk_size])
        return
    # aiohttp's multipart BodyPartReader: its read() would take the whole part at once.
    read = getattr(source, "read_chunk", None) or getattr(source, "read", None)
    if read is not None:
        while True:
            if inspect.iscoroutinefunction(read):
                chunk = await read(chunk_size)
            else:
                chunk = await asyncio.to_thread(read, chunk_size)
            if not chunk:
                return
            yield bytes(chunk)
    if isinstance(source, AsyncIterable):
        async for chunk in source:
            if chunk:
                yield bytes(chunk)
        return
    raise TypeError(f"cannot read blob content from {type(source).__name__}")


async def in_thread_to_the_end(
    fn: Callable[..., T], *args: Any, on_cancel: Callable[[], None] | None = None
) -> T:
    """Run ``fn`` in a thread; if the caller is cancelled, let the thread finish first.

    ``asyncio.to_thread`` abandons a running thread on cancellation; cleanup that then closes
    or removes what the thread is still using would race with it. ``on_cancel`` may ask the
    thread to stop early.
    """
    running = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        if on_cancel is not None:
            on_cancel()
        await asyncio.wait([running])
        if not running.cancelled():
            running.exception()  # retrieved: the cancellation is what the caller sees
        raise


def check_sha256(expected: str | None, actual: str) -> None:
    """Refuse content whose sha256 is not the one the caller announced."""
    if expected is not None and expected.lower() != actual:
        raise BadRequest(f"content sha256 {actual} does not match the expected {expected}")


class BlobStore(ABC):
    """A flat namespace of keys (see :mod:`.keys`) holding immutable byte strings."""

    capabilities: ClassVar[Capabilities]

    @abstractmethod
    async def put(
        self, key: str, source: BlobSource, *, expected_sha256: str | None = None
    ) -> BlobInfo:
        """Store ``source`` under ``key`` (replacing any object there) and return its info.

        The sha256 and size are computed while streaming. With ``expected_sha256``, content
        that does not match is refused with BadRequest and nothing is stored. Errors raised by
        the source propagate unchanged, and nothing is stored either.
        """

    @abstractmethod
    def get(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The object's content as chunks (an async generator; NotFound on the first step)."""

    @abstractmethod
    async def stat(self, key: str) -> BlobInfo:
        """Size and sha256 of the object; NotFound if there is none."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    @abstractmethod
    async def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted."""

    @abstractmethod
    async def sweep_temporary(self, older_than: timedelta = timedelta(hours=1)) -> int:
        """Remove what puts of dead processes left (older than ``older_than``); return a count.

        Younger leftovers may belong to puts still running, so they stay.
        """

    async def copy(self, source_key: str, dest_key: str) -> BlobInfo:
        """Store a copy of ``source_key`` under ``dest_key``; NotFound if the source is missing.

        This default streams through Warren; drivers with ``server_side_copy`` do better.
        """
        check_key(dest_key)
        info = await self.stat(source_key)
        return await self.put(dest_key, self.get(source_key), expected_sha256=info.sha256)

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            await self.stat(key)
        except NotFound:
            return False
        return True

    async def download(self, key: str, path: Path | str) -> BlobInfo:
        """Write the object to the local file ``path`` atomically and verify its sha256.

        The file appears complete or not at all (written beside it, then renamed).
        """
        path = Path(path)
        info = await self.stat(key)
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        digest = hashlib.sha256()
        size = 0
        handle = await asyncio.to_thread(open, temp, "xb")
        try:
            async for chunk in self.get(key):
                digest.update(chunk)
                size += len(chunk)
                await in_thread_to_the_end(handle.write, chunk)
            await in_thread_to_the_end(_flush_and_close, handle)
            if info.sha256 is not None and digest.hexdigest() != info.sha256:
                raise WarrenError(f"blob {key} is corrupt: its content no longer has its sha256")
            await asyncio.to_thread(os.replace, temp, path)
        except BaseException:
            handle.close()
            temp.unlink(missing_ok=True)
            raise
        return BlobInfo(key=check_key(key), size=size, sha256=digest.hexdigest())

    async def get_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        """A URL to download the object directly (only if ``capabilities.presigned_urls``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot hand out download URLs")

    async def close(self) -> None:  # noqa: B027 (drivers without resources need no override)
        """Release connections and other resources held by the store."""


def _flush_and_close(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
