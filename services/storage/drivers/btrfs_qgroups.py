"""What btrfs counts per subvolume: the exclusive bytes of its qgroup, when quotas are on.

A snapshot shares its extents with the image volume it was taken from; the bytes only it
references (its qgroup's *exclusive* figure) are what the instance added. The kernel keeps
that figure only while quotas (qgroups) are enabled on the filesystem; without them callers
fall back to walking the tree. One ``btrfs qgroup show`` answers for every subvolume; each
volume's subvolume id comes from an ioctl on its directory (no process per volume).

The figures are those of the last committed transaction (btrfs commits every 30 s, or on
``sync``), as LXD reports them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import struct
from pathlib import Path

from services.storage.drivers.base import StorageError, run

log = logging.getLogger(__name__)

#: _IOWR(0x94, 18, struct btrfs_ioctl_ino_lookup_args) (4096 bytes: treeid, objectid, name).
BTRFS_IOC_INO_LOOKUP = 0xD0009412
BTRFS_FIRST_FREE_OBJECTID = 256  # a subvolume's root directory
_INO_LOOKUP_SIZE = 4096
_LEVEL0 = re.compile(r"^0/(\d+)$")
_NO_QUOTAS = "quotas not enabled"


def parse_qgroups(text: str) -> dict[int, int]:
    """Subvolume id -> exclusive bytes, from ``btrfs qgroup show --raw`` (columns qgroupid,
    referenced, exclusive, then optional ones; only level-0 qgroups name a subvolume)."""
    found: dict[int, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        match = _LEVEL0.match(fields[0])
        if match and fields[2].isdigit():
            found[int(match.group(1))] = int(fields[2])
    return found


def exclusive_bytes(path: Path) -> dict[int, int] | None:
    """Exclusive bytes of every subvolume of the filesystem holding ``path`` (blocking);
    None when quotas are not enabled there (or cannot be read: the caller walks trees)."""
    try:
        out = run(["btrfs", "qgroup", "show", "--raw", str(path)])
    except StorageError as exc:
        if _NO_QUOTAS not in exc.message:
            log.warning("btrfs qgroups of %s unreadable, walking trees: %s", path, exc.message)
        return None
    return parse_qgroups(out)


def subvolume_id(path: Path) -> int:
    """The id of the subvolume holding directory ``path`` (``BTRFS_IOC_INO_LOOKUP`` with
    treeid 0 answers the fd's own tree); blocking."""
    args = bytearray(_INO_LOOKUP_SIZE)
    struct.pack_into("=QQ", args, 0, 0, BTRFS_FIRST_FREE_OBJECTID)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, BTRFS_IOC_INO_LOOKUP, args)
    finally:
        os.close(fd)
    return int(struct.unpack_from("=Q", args, 0)[0])
