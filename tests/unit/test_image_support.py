"""Helpers for the image tests (no tests here): write tarballs member by member with tarfile.

Tests build hostile archives themselves, exactly as an attacker would, rather than shipping
binary fixtures.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

METADATA_YAML = b"""\
architecture: x86_64
creation_date: 1700000000
properties:
  os: testos
  release: "1.0"
  description: test image
templates:
  /etc/hostname:
    when: [create, copy]
    template: hostname.tpl
"""

_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "chr": tarfile.CHRTYPE,
    "blk": tarfile.BLKTYPE,
}


@dataclass
class M:
    """One archive member to write."""

    name: str
    kind: str = "file"
    data: bytes = b""
    link: str = ""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    mtime: int = 1700000000
    major: int = 0
    minor: int = 0


def tar_bytes(members: list[M], compression: str = "") -> bytes:
    """An archive holding ``members`` in order; compression "", "gz", "xz", "bz2" or "zst"."""
    buf = io.BytesIO()
    mode = f"w:{compression}" if compression in ("gz", "xz", "bz2") else "w"
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = _TYPES[m.kind]
            info.mode = m.mode if m.mode is not None else (0o755 if m.kind == "dir" else 0o644)
            info.uid, info.gid, info.mtime = m.uid, m.gid, m.mtime
            info.linkname = m.link
            info.devmajor, info.devminor = m.major, m.minor
            if m.kind == "file":
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
            else:
                tar.addfile(info)
    data = buf.getvalue()
    if compression == "zst":
        data = subprocess.run(
            ["zstd", "-q", "-c"], input=data, capture_output=True, check=True
        ).stdout
    return data


def write_tar(path: Path, members: list[M], compression: str = "") -> Path:
    path.write_bytes(tar_bytes(members, compression))
    return path


def metadata_members(meta: bytes = METADATA_YAML) -> list[M]:
    return [
        M("metadata.yaml", data=meta),
        M("templates", "dir"),
        M("templates/hostname.tpl", data=b"{{ container.name }}\n"),
    ]


def rootfs_members(prefix: str = "rootfs/") -> list[M]:
    """A small but varied root: modes, owners, absolute and relative links, a hardlink, a FIFO."""
    p = prefix
    entries = [
        M(f"{p}bin", "dir"),
        M(f"{p}bin/busybox", data=b"\x7fELF fake", mode=0o755),
        M(f"{p}bin/sh", "symlink", link="/bin/busybox"),
        M(f"{p}bin/ls", "symlink", link="busybox"),
        M(f"{p}etc", "dir"),
        M(f"{p}etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),
        M(f"{p}etc/shadow", data=b"root:*:::::::\n", mode=0o600),
        M(f"{p}etc/mtab", "symlink", link="../proc/self/mounts"),
        M(f"{p}usr/bin/su", data=b"setuid", mode=0o4755),
        M(f"{p}usr/bin/sudo", "hardlink", link=f"{p}usr/bin/su"),
        M(f"{p}home/user", "dir", mode=0o700, uid=1000, gid=1000),
        M(f"{p}home/user/notes", data=b"mine", uid=1000, gid=1000),
        M(f"{p}run/initctl", "fifo", mode=0o600),
        M(f"{p}tmp", "dir", mode=0o1777),
    ]
    return ([M(prefix.rstrip("/") or ".", "dir")] if prefix else []) + entries


def unified(path: Path, compression: str = "gz", extra: list[M] | None = None) -> Path:
    """A good unified image (plus ``extra`` members at the end)."""
    return write_tar(path, metadata_members() + rootfs_members() + (extra or []), compression)
