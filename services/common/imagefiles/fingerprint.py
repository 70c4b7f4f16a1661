"""Image fingerprints as LXD computes them, always streaming (an image never sits in memory).

- unified image: sha256 of the tarball's bytes;
- split image: sha256 of the metadata tarball's bytes followed by the rootfs file's bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024


class HashingReader:
    """A read-only file wrapper that feeds every byte read into a sha256 and counts them.

    Several readers may share one hash (``hasher=``) to fingerprint a split image in one pass:
    read the metadata file to its end first, then the rootfs file.
    """

    def __init__(self, raw: BinaryIO, hasher: hashlib._Hash | None = None) -> None:
        self.raw = raw
        self.hasher = hasher if hasher is not None else hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hasher.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) whatever is left, so the fingerprint covers the whole file."""
        while self.read(CHUNK):
            pass

    def hexdigest(self) -> str:
        return self.hasher.hexdigest()


def _feed(path: Path, hasher: hashlib._Hash) -> int:
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return size


def fingerprint_file(path: str | Path) -> str:
    """Fingerprint of a unified image tarball."""
    hasher = hashlib.sha256()
    _feed(Path(path), hasher)
    return hasher.hexdigest()


def fingerprint_split(metadata: str | Path, rootfs: str | Path) -> str:
    """Fingerprint of a split image: metadata tarball bytes, then rootfs bytes."""
    hasher = hashlib.sha256()
    _feed(Path(metadata), hasher)
    _feed(Path(rootfs), hasher)
    return hasher.hexdigest()


def fingerprint(metadata: str | Path, rootfs: str | Path | None = None) -> str:
    """Fingerprint of a unified (``rootfs`` None) or split image."""
    return fingerprint_file(metadata) if rootfs is None else fingerprint_split(metadata, rootfs)
