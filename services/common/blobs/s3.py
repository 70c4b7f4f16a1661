"""The ``s3`` blob store: a bucket of any S3 server, through the ``minio`` client.

Every node sees the same objects. A put streams the content as a multipart upload under a
hidden temporary key (``.warren-tmp/<uuid>``), then copies it server-side to its key with the
sha256 as metadata (known only once the stream ended), then removes the temporary object. A
failed or cancelled put aborts the multipart upload and removes the temporary object, so no
partial object is ever visible under a real key.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import urllib3
from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import MIN_PART_SIZE, check_bucket_name

from schemas.errors import BadRequest, NotFound, Unavailable, WarrenError

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

T = TypeVar("T")

TEMP_PREFIX = ".warren-tmp/"
SHA256_META = "warren-sha256"
PART_SIZE = 8 * 1024 * 1024
_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchVersion", "ResourceNotFound"}
_AUTH = {"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken"}


class S3AuthError(Unavailable):
    """The S3 server refused Warren's credentials: the store is unusable until fixed."""


class S3BlobStore(BlobStore):
    """Blobs as objects of one bucket (created on first use)."""

    capabilities = Capabilities(
        presigned_urls=True, server_side_copy=True, shared_between_nodes=True
    )

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str = "warren",
        *,
        secure: bool = False,
        region: str | None = None,
        part_size: int = PART_SIZE,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        try:
            check_bucket_name(bucket, strict=True)
        except ValueError as exc:
            raise BadRequest(f"invalid S3 bucket name {bucket!r}") from exc
        self.endpoint = endpoint
        self.bucket = bucket
        self.part_size = max(part_size, MIN_PART_SIZE)
        self.chunk_size = chunk_size
        # Fewer, quicker retries than minio's default: a dead server must surface as Unavailable
        # within seconds. Reads keep minio's 5 minutes: a server-side copy of a big object can
        # keep the response waiting that long.
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=300),
            maxsize=16,
            retries=urllib3.Retry(
                total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
        )
        try:
            self._client = Minio(
                endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=secure,
                region=region,
                http_client=self._http,
            )
        except ValueError as exc:
            raise WarrenError(f"invalid S3 endpoint {endpoint!r}: {exc}") from exc
        self._bucket_ready = False
        self._bucket_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: BlobSettings) -> S3BlobStore:
        """The store configured by ``settings`` (the WARREN_S3_* variables)."""
        assert settings.s3_endpoint and settings.s3_access_key and settings.s3_secret_key
        return cls(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key.get_secret_value(),
            settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )

    async def _call(self, fn: Callable[..., T], *args: Any, key: str = "", **kwargs: Any) -> T:
        """Run a blocking minio call in a thread, with backend errors translated."""
        await self._ensure_bucket()
        return await asyncio.to_thread(self._translated, fn, key, *args, **kwargs)

    def _translated(self, fn: Callable[..., T], key: str, *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except S3Error as exc:
            raise self._from_s3(exc, key) from exc
        except (urllib3.exceptions.HTTPError, OSError, ServerError, InvalidResponseError) as exc:
            raise Unavailable(f"S3 server {self.endpoint} unavailable: {exc}") from exc

    def _from_s3(self, exc: S3Error, key: str) -> WarrenError:
        if exc.code in _MISSING:
            return NotFound(f"blob {key} not found")
        if exc.code in _AUTH:
            return S3AuthError(
                f"S3 server {self.endpoint} refused Warren's credentials ({exc.code}): "
                "check WARREN_S3_ACCESS_KEY and WARREN_S3_SECRET_KEY"
            )
        if exc.code == "NoSuchBucket":
            return Unavailable(f"S3 bucket {self.bucket} is gone")
        return WarrenError(f"S3 error on {key or self.bucket}: {exc.code}: {exc.message}")

    async def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        async with self._bucket_lock:
            if not self._bucket_ready:
                await asyncio.to_thread(self._translated, self._make_bucket, "")
                self._bucket_ready = True

    def _make_bucket(self) -> None:
        if self._client.bucket_exists(self.bucket):
            return
        try:
            self._client.make_bucket(self.bucket)
        except S3Error as exc:
            # Another node (or replica) created it first.
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    async def put(
        self, key: str, source: BlobSource, *, expected_sha256: str | None = None
    ) -> BlobInfo:
        check_key(key)
        await self._ensure_bucket()
        temp = f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        reader = _ThreadReader(iter_source(source, self.chunk_size), asyncio.get_running_loop())
        try:
            try:
                # When cancelled, the reader fails minio's next read, so that minio aborts the
                # multipart upload before the temporary object is removed below.
                upload = functools.partial(
                    self._client.put_object,
                    self.bucket,
                    temp,
                    reader,
                    length=-1,
                    part_size=self.part_size,
                    # One part in flight: minio's parallel uploads queue parts without bound
                    # when the server is slower than the source.
                    num_parallel_uploads=1,
                )
                await in_thread_to_the_end(self._translated, upload, key, on_cancel=reader.abort)
            except Exception:
                if reader.error is not None:
                    raise reader.error from None
                raise
            sha256 = reader.digest.hexdigest()
            check_sha256(expected_sha256, sha256)
            await self._call(
                self._client.copy_object,
                self.bucket,
                key,
                CopySource(self.bucket, temp),
                key=key,
                metadata={SHA256_META: sha256},
                metadata_directive=REPLACE,
            )
        finally:
            # Shielded: a cancelled put still removes its temporary object.
            await asyncio.shield(self._remove_quietly(temp))
        return BlobInfo(key=key, size=reader.size, sha256=sha256)

    async def _remove_quietly(self, name: str) -> None:
        try:
            await asyncio.to_thread(self._client.remove_object, self.bucket, name)
        except Exception:
            # Best effort: sweep_temporary() removes what a failure here leaves.
            pass

    async def get(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        check_key(key)
        response = await self._call(self._client.get_object, self.bucket, key, key=key)
        try:
            while chunk := await asyncio.to_thread(
                self._translated, response.read, key, chunk_size
            ):
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def stat(self, key: str) -> BlobInfo:
        check_key(key)
        found = await self._call(self._client.stat_object, self.bucket, key, key=key)
        meta = {name.lower(): value for name, value in (found.metadata or {}).items()}
        sha256 = meta.get(f"x-amz-meta-{SHA256_META}")
        return BlobInfo(key=key, size=found.size or 0, sha256=sha256)

    async def delete(self, key: str) -> None:
        check_key(key)
        # S3 deletes are idempotent already: a missing key is not an error.
        await self._call(self._client.remove_object, self.bucket, key, key=key)

    async def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        names = await self._call(self._list, prefix)
        return sorted(name for name in names if not name.startswith(TEMP_PREFIX))

    def _list(self, prefix: str) -> list[str]:
        objects = self._client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
        return [obj.object_name for obj in objects if obj.object_name]

    async def copy(self, source_key: str, dest_key: str) -> BlobInfo:
        check_key(source_key)
        check_key(dest_key)
        info = await self.stat(source_key)
        # The sha256 is set again rather than copied: S3 cannot copy metadata of objects over
        # 5 GiB (minio then composes the copy from parts).
        meta = {SHA256_META: info.sha256} if info.sha256 else None
        await self._call(
            self._client.copy_object,
            self.bucket,
            dest_key,
            CopySource(self.bucket, source_key),
            key=source_key,
            metadata=meta,
            metadata_directive=REPLACE if meta else None,
        )
        return info.model_copy(update={"key": dest_key})

    async def sweep_temporary(self, older_than: timedelta = timedelta(hours=1)) -> int:
        # Incomplete multipart uploads of dead processes are invisible here (minio has no public
        # call to list them): a bucket lifecycle rule (AbortIncompleteMultipartUpload) is the
        # S3 way to reclaim them.
        cutoff = datetime.now(UTC) - older_than
        stale = await self._call(self._list_temporary, cutoff)
        for name in stale:
            await self._call(self._client.remove_object, self.bucket, name, key=name)
        return len(stale)

    def _list_temporary(self, cutoff: datetime) -> list[str]:
        objects = self._client.list_objects(self.bucket, prefix=TEMP_PREFIX, recursive=True)
        return [
            obj.object_name
            for obj in objects
            if obj.object_name and (obj.last_modified is None or obj.last_modified <= cutoff)
        ]

    async def get_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        check_key(key)
        return await self._call(
            self._client.presigned_get_object, self.bucket, key, key=key, expires=expires
        )

    async def close(self) -> None:
        self._http.clear()


class _ThreadReader:
    """A blocking ``read(n)`` for minio's upload thread, fed by an async chunk iterator.

    Each read asks the event loop for chunks until it has ``n`` bytes (minio reads one part at
    a time), so at most about one part is in memory. It hashes what it hands out, which is the
    object's content in order.
    """

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._chunks = chunks
        self._loop = loop
        self._leftover = b""
        self._done = False
        self._lock = threading.Lock()
        self._aborted = False
        self._pending: concurrent.futures.Future[bytes | None] | None = None
        self.digest = hashlib.sha256()
        self.size = 0
        self.error: BaseException | None = None

    def abort(self) -> None:
        """Make the pending and every later read fail (called from the event loop)."""
        with self._lock:
            self._aborted = True
            if self._pending is not None:
                self._pending.cancel()

    async def _next(self) -> bytes | None:
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            return None
        except Exception as exc:
            self.error = exc
            raise

    def read(self, size: int = -1) -> bytes:
        parts = [self._leftover] if self._leftover else []
        have = len(self._leftover)
        self._leftover = b""
        while not self._done and (size < 0 or have < size):
            with self._lock:
                # Under the lock: an abort() racing with this request either sees it (and
                # cancels it) or has already set the flag. Otherwise the upload thread could
                # wait forever on a source that stalls.
                if self._aborted:
                    raise OSError("upload cancelled")
                pending = asyncio.run_coroutine_threadsafe(self._next(), self._loop)
                self._pending = pending
            try:
                chunk = pending.result()
            except concurrent.futures.CancelledError:
                raise OSError("upload cancelled") from None
            if chunk is None:
                self._done = True
                break
            parts.append(chunk)
            have += len(chunk)
        if size >= 0 and have > size:
            # Split only the last chunk: copying the whole part twice would double the memory.
            keep = len(parts[-1]) - (have - size)
            parts[-1], self._leftover = parts[-1][:keep], parts[-1][keep:]
        data = b"".join(parts)
        del parts
        self.digest.update(data)
        self.size += len(data)
        return data
