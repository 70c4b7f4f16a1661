"""Blob storage for images and backups: one interface, a registry of drivers, a factory.

``open_blob_store()`` returns the store the environment configures (see :mod:`.settings`).
Callers branch on ``store.capabilities``, never on the driver's name.
"""

from __future__ import annotations

from collections.abc import Mapping

from schemas.errors import BadRequest

from .base import CHUNK_SIZE, BlobInfo, BlobSource, BlobStore, Capabilities, iter_source
from .keys import check_key, check_prefix
from .local import LocalBlobStore
from .s3 import S3AuthError, S3BlobStore
from .settings import BlobSettings

DRIVERS: dict[str, type[LocalBlobStore] | type[S3BlobStore]] = {
    "local": LocalBlobStore,
    "s3": S3BlobStore,
}


def open_blob_store(
    settings: BlobSettings | None = None, env: Mapping[str, str] | None = None
) -> BlobStore:
    """The blob store ``settings`` (default: read from ``env`` / the environment) choose."""
    settings = settings or BlobSettings.from_env(env)
    driver = DRIVERS.get(settings.driver)
    if driver is None:
        raise BadRequest(
            f"unknown blob driver {settings.driver!r} (known: {', '.join(sorted(DRIVERS))})"
        )
    return driver.from_settings(settings)


__all__ = [
    "CHUNK_SIZE",
    "DRIVERS",
    "BlobInfo",
    "BlobSettings",
    "BlobSource",
    "BlobStore",
    "Capabilities",
    "LocalBlobStore",
    "S3AuthError",
    "S3BlobStore",
    "check_key",
    "check_prefix",
    "iter_source",
    "open_blob_store",
]
