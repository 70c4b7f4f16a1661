"""Plain mount(2)/umount2(2) wrappers and a reader of /proc/self/mountinfo (all blocking)."""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path

MS_RDONLY = 0x1
MS_BIND = 0x1000
MNT_DETACH = 0x2

_libc = ctypes.CDLL(None, use_errno=True)
_ESCAPE = re.compile(r"\\([0-7]{3})")


def mount(source: str, target: Path, fstype: str | None, options: str = "", flags: int = 0) -> None:
    """mount(2); raises OSError with the kernel's errno."""
    rc = _libc.mount(
        os.fsencode(source),
        os.fsencode(target),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        options.encode() if options else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or 'bind'} {source} on {target}: {os.strerror(err)}")


def umount(target: Path, *, detach: bool = False) -> None:
    """umount2(2); ``detach`` lazily unmounts a busy mount (MNT_DETACH)."""
    rc = _libc.umount2(os.fsencode(target), MNT_DETACH if detach else 0)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def mount_points() -> list[str]:
    """Every mount point of this mount namespace, in mount order (octal escapes decoded)."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            field = line.split(" ", 5)[4]
            points.append(_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field))
    return points


def fs_type(path: Path) -> str:
    """The filesystem type of the mount holding ``path`` (the longest matching mount point)."""
    target = os.path.realpath(path)
    best, kind = "", ""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ")
            point = _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fields[fields.index("-") + 1]
    return kind


def is_mount(path: Path) -> bool:
    """True if something is mounted exactly on ``path``."""
    return os.path.realpath(path) in mount_points()


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest (last mounted) first: the unmount order."""
    root = os.path.realpath(path)
    prefix = root.rstrip("/") + "/"
    return [p for p in reversed(mount_points()) if p == root or p.startswith(prefix)]


def umount_all(path: Path) -> None:
    """Unmount everything at or below ``path`` (stacked mounts included), deepest first."""
    for point in mounts_under(path):
        try:
            umount(Path(point))
        except OSError:
            # Busy (a process still has a cwd or fd there): detach it so the tree can go.
            umount(Path(point), detach=True)
