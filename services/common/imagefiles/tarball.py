"""Inspect and unpack LXD images (unified tarball, or split metadata tarball + rootfs).

Both walk each file once as a stream, check every member with
:class:`~services.common.imagefiles.members.MemberChecker` before it touches the disk, and
compute the fingerprint on the way. :func:`unpack_image` builds the image directory
(``metadata.yaml``, ``templates/``, ``rootfs/``) in a private temporary directory beside
``target`` and renames it into place only when everything succeeded: a rejected, truncated or
corrupt image leaves nothing behind. A squashfs rootfs (split images only) is unpacked with
``unsquashfs`` and then checked with the same policy.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from schemas.errors import BadRequest, Conflict
from services.common.imagefiles.archive import (
    Format,
    decompressed,
    iter_tar,
    read_member,
    sniff_file,
)
from services.common.imagefiles.fingerprint import HashingReader
from services.common.imagefiles.members import METADATA, ROOTFS, Kind, Layout, MemberChecker
from services.common.imagefiles.metadata import MAX_METADATA_BYTES, ImageMetadata, parse_metadata
from services.common.imagefiles.tree import TreeWriter

# Host errors that a hostile or broken archive can provoke: its fault, not the server's.
_INPUT_ERRNOS = {
    errno.ENAMETOOLONG,
    errno.EINVAL,
    errno.EEXIST,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ELOOP,
    errno.ENOTEMPTY,
    errno.EMLINK,
}


@dataclass(frozen=True)
class ImageInfo:
    """What an image file (or pair) holds, as far as the image service cares."""

    metadata: ImageMetadata
    kind: Literal["unified", "split"]
    fingerprint: str
    size: int  # bytes of the file, or of both files of a split image
    rootfs_format: Format | None = None  # split images only


def _scan_tar(
    path: Path, checker: MemberChecker, hasher: hashlib._Hash, writer: TreeWriter | None
) -> tuple[bytes | None, int]:
    """Check (and with ``writer`` write) every member; metadata.yaml's bytes and the file size."""
    fmt = sniff_file(str(path))
    metadata: bytes | None = None
    with open(path, "rb") as raw:
        reader = HashingReader(raw, hasher)
        with decompressed(reader, fmt) as stream:
            for member, tar in iter_tar(stream):
                checked = checker.check(member)
                if checked is None:
                    continue
                image_path, kind = checked
                data: BinaryIO | None = None
                if image_path == (METADATA,):
                    metadata = read_member(tar, member, MAX_METADATA_BYTES)
                    data = io.BytesIO(metadata)
                elif kind == "file" and writer is not None:
                    data = tar.extractfile(member)
                if writer is not None:
                    _write(writer, checker, image_path, kind, member, data)
        checker.finish()
        reader.drain()
    return metadata, reader.size


def _write(
    writer: TreeWriter,
    checker: MemberChecker,
    image_path: tuple[str, ...],
    kind: Kind,
    member: tarfile.TarInfo,
    data: BinaryIO | None,
) -> None:
    try:
        if kind == "hardlink":
            writer.add_hardlink(image_path, checker.image_path(member.linkname))
        else:
            writer.add(image_path, kind, member, data)
    except OSError as e:
        if e.errno in _INPUT_ERRNOS:
            raise BadRequest(f"archive member {member.name!r}: {e.strerror}") from None
        raise


def _hash_file(path: Path, hasher: hashlib._Hash) -> int:
    with open(path, "rb") as f:
        reader = HashingReader(f, hasher)
        reader.drain()
    return reader.size


def _kind_of(mode: int) -> Kind:
    for test, kind in (
        (stat.S_ISDIR, "dir"),
        (stat.S_ISREG, "file"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISCHR, "chr"),
        (stat.S_ISBLK, "blk"),
    ):
        if test(mode):
            return kind  # type: ignore[return-value]
    raise BadRequest("rootfs holds an unsupported file type (socket)")


def _unsquash(path: Path, image_dir: Path, checker: MemberChecker) -> None:
    """Unpack a squashfs rootfs into ``image_dir/rootfs`` and check the result like a tarball."""
    tool = shutil.which("unsquashfs")
    if tool is None:
        raise BadRequest("squashfs images need unsquashfs (Debian package squashfs-tools)")
    dest = image_dir / ROOTFS
    proc = subprocess.run(
        [tool, "-no-progress", "-no-xattrs", "-d", str(dest), str(path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise BadRequest(f"corrupt squashfs rootfs: {proc.stderr.strip()[-300:]}")
    for dirpath, dirnames, filenames in os.walk(dest):
        rel = Path(dirpath).relative_to(image_dir).parts
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            kind = _kind_of(os.lstat(full).st_mode)
            link = os.readlink(full) if kind == "symlink" else ""
            checker.check_path((*rel, name), kind, link)


def _run(
    metadata_file: Path,
    rootfs_file: Path | None,
    image_dir: Path | None,
    *,
    allow_devices: bool,
    preserve_owner: bool,
) -> ImageInfo:
    hasher = hashlib.sha256()
    layout: Layout = "unified" if rootfs_file is None else "metadata"
    writer = TreeWriter(str(image_dir), preserve_owner=preserve_owner) if image_dir else None
    try:
        checker = MemberChecker(layout, allow_devices=allow_devices)
        raw_meta, size = _scan_tar(metadata_file, checker, hasher, writer)
        rootfs_format: Format | None = None
        if rootfs_file is not None:
            rootfs_format = sniff_file(str(rootfs_file))
            rootfs_checker = MemberChecker("rootfs", allow_devices=allow_devices)
            if rootfs_format == "squashfs":
                size += _hash_file(rootfs_file, hasher)
                if image_dir is not None:
                    _unsquash(rootfs_file, image_dir, rootfs_checker)
            else:
                size += _scan_tar(rootfs_file, rootfs_checker, hasher, writer)[1]
        if writer is not None:
            writer.finish()
    finally:
        if writer is not None:
            writer.close()
    assert raw_meta is not None  # checker.finish() insists on metadata.yaml
    return ImageInfo(
        metadata=parse_metadata(raw_meta),
        kind="unified" if rootfs_file is None else "split",
        fingerprint=hasher.hexdigest(),
        size=size,
        rootfs_format=rootfs_format,
    )


def inspect_image(
    metadata_file: str | Path,
    rootfs_file: str | Path | None = None,
    *,
    allow_devices: bool = False,
) -> ImageInfo:
    """Validate an image without unpacking it: metadata, kind, fingerprint, size.

    Every tar member is checked against the same policy as :func:`unpack_image`; a squashfs
    rootfs is only fingerprinted here (its content is checked when unpacked).
    """
    rootfs = Path(rootfs_file) if rootfs_file is not None else None
    return _run(
        Path(metadata_file), rootfs, None, allow_devices=allow_devices, preserve_owner=False
    )


def unpack_image(
    target: str | Path,
    metadata_file: str | Path,
    rootfs_file: str | Path | None = None,
    *,
    allow_devices: bool = False,
    preserve_owner: bool | None = None,
) -> ImageInfo:
    """Unpack an image into the new directory ``target`` (metadata.yaml, templates/, rootfs/).

    ``allow_devices`` lets character/block device nodes through (privileged pools only).
    Ownership is kept numerically when running as root (``preserve_owner`` overrides).
    On any error ``target`` does not exist afterwards and no temporary directory is left.
    """
    target = Path(target)
    if os.path.lexists(target):
        raise Conflict(f"{target} already exists")
    if preserve_owner is None:
        preserve_owner = os.geteuid() == 0
    rootfs = Path(rootfs_file) if rootfs_file is not None else None
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        info = _run(
            Path(metadata_file),
            rootfs,
            tmp,
            allow_devices=allow_devices,
            preserve_owner=preserve_owner,
        )
        os.chmod(tmp, 0o755)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info
