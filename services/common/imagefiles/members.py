"""The safety policy for the members of an image archive, checked before anything is written.

Every member's path is normalised to components relative to the image directory (whose layout
is ``metadata.yaml``, ``templates/`` and ``rootfs/``, whichever archive it came from) and
checked against what the archive has produced so far. Rejections are :class:`BadRequest`
naming the member. The rules (LXD-like):

- no absolute member names, no ``..`` components;
- ``metadata.yaml`` is a regular file; ``templates/`` holds only directories and regular files
  (the host reads them, so no links of any kind); a unified tarball holds nothing else at its top;
- inside ``rootfs/``: absolute symlink targets are fine (they resolve inside the container's
  root), relative ones must not climb above the container's root; a hardlink must name an
  earlier regular file of the same archive; FIFOs are fine; character and block devices only
  when the caller allows them (LXD images carry none; ``/dev`` is populated by the runtime);
- no member may be written through an earlier symlink or non-directory (``a -> /etc`` then
  ``a/passwd``), and no directory may be replaced by a non-directory or the reverse.
"""

from __future__ import annotations

import tarfile
from typing import Literal

from schemas.errors import BadRequest

Layout = Literal["unified", "metadata", "rootfs"]
Kind = Literal["dir", "file", "symlink", "hardlink", "fifo", "chr", "blk"]
Path = tuple[str, ...]

METADATA = "metadata.yaml"
TEMPLATES = "templates"
ROOTFS = "rootfs"
_TOP: dict[Layout, frozenset[str]] = {
    "unified": frozenset({METADATA, TEMPLATES, ROOTFS}),
    "metadata": frozenset({METADATA, TEMPLATES}),
    "rootfs": frozenset({ROOTFS}),
}


def member_kind(member: tarfile.TarInfo) -> Kind:
    """The kind of a tar member, or BadRequest for types an image may not hold."""
    if member.isdir():
        return "dir"
    if member.isreg():
        return "file"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isfifo():
        return "fifo"
    if member.ischr():
        return "chr"
    if member.isblk():
        return "blk"
    raise BadRequest(f"archive member {member.name!r}: unsupported type {member.type!r}")


def split_name(name: str, what: str = "archive member") -> Path:
    """Components of a member name (``./`` and empty parts dropped); absolute or ``..`` refused."""
    if name.startswith("/"):
        raise BadRequest(f"{what} {name!r}: absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise BadRequest(f"{what} {name!r}: '..' path component")
    return parts


def climbs_out(parent: Path, target: str) -> bool:
    """Does a relative symlink at directory ``parent`` (relative to the root) lead above it?"""
    depth = len(parent)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        depth = depth - 1 if part == ".." else depth + 1
        if depth < 0:
            return True
    return False


class MemberChecker:
    """Check members one by one in archive order; remembers what each path has become."""

    def __init__(self, layout: Layout, *, allow_devices: bool = False) -> None:
        self.layout = layout
        self.allow_devices = allow_devices
        self.seen: dict[Path, Kind] = {}
        self.has_metadata = False
        self.has_rootfs = layout == "rootfs"

    def image_path(self, name: str, what: str = "archive member") -> Path:
        """The member's path in the image directory (rootfs tarballs land under ``rootfs/``)."""
        parts = split_name(name, what)
        return (ROOTFS, *parts) if self.layout == "rootfs" else parts

    def check(self, member: tarfile.TarInfo) -> tuple[Path, Kind] | None:
        """Validate one member; its image path and kind, or None for a root ``./`` entry to skip."""
        kind = member_kind(member)
        path = self.image_path(member.name)
        if not path:
            return None
        self.check_path(path, kind, member.linkname, member.name)
        return path, kind

    def check_path(self, path: Path, kind: Kind, linkname: str = "", name: str = "") -> None:
        """Validate an entry at ``path`` (image-relative) of ``kind``; record it if accepted."""
        name = name or "/".join(path)
        top = path[0]
        if top not in _TOP[self.layout]:
            raise BadRequest(f"archive member {name!r}: not part of an LXD image ({top!r})")
        if top == METADATA:
            if len(path) != 1 or kind != "file":
                raise BadRequest(f"archive member {name!r}: metadata.yaml must be a regular file")
            self.has_metadata = True
        elif top == TEMPLATES:
            if kind not in ("dir", "file") or (len(path) == 1 and kind != "dir"):
                raise BadRequest(f"archive member {name!r}: templates hold only files and dirs")
        else:
            self.has_rootfs = True
            if len(path) == 1 and kind != "dir":
                raise BadRequest(f"archive member {name!r}: rootfs must be a directory")
            self._check_rootfs_entry(path, kind, linkname, name)
        self._check_parents(path, kind, name)
        self.seen[path] = "file" if kind == "hardlink" else kind

    def _check_rootfs_entry(self, path: Path, kind: Kind, linkname: str, name: str) -> None:
        if kind == "symlink":
            if not linkname:
                raise BadRequest(f"archive member {name!r}: symlink with an empty target")
            # Absolute targets resolve against the container's root, never the host's.
            if not linkname.startswith("/") and climbs_out(path[1:-1], linkname):
                raise BadRequest(
                    f"archive member {name!r}: symlink target {linkname!r} escapes the root"
                )
        elif kind == "hardlink":
            target = self.image_path(linkname, f"archive member {name!r}: hardlink target")
            if self.seen.get(target) != "file":
                raise BadRequest(
                    f"archive member {name!r}: hardlink target {linkname!r} is not an earlier "
                    "regular file of the archive"
                )
        elif kind in ("chr", "blk") and not self.allow_devices:
            raise BadRequest(f"archive member {name!r}: device nodes are not allowed in images")

    def _check_parents(self, path: Path, kind: Kind, name: str) -> None:
        for i in range(1, len(path)):
            prefix = path[:i]
            seen = self.seen.get(prefix)
            if seen is None:
                self.seen[prefix] = "dir"  # tar writers may omit parent directory entries
            elif seen == "symlink":
                raise BadRequest(
                    f"archive member {name!r}: written through the symlink {'/'.join(prefix)!r}"
                )
            elif seen != "dir":
                raise BadRequest(
                    f"archive member {name!r}: parent {'/'.join(prefix)!r} is not a directory"
                )
        before = self.seen.get(path)
        if before is not None and (before == "dir") != (kind == "dir"):
            raise BadRequest(f"archive member {name!r}: replaces an earlier {before} entry")

    def finish(self) -> None:
        """Check the archive as a whole once every member went through :meth:`check`."""
        if self.layout != "rootfs" and not self.has_metadata:
            raise BadRequest("image has no metadata.yaml")
        if self.layout == "unified" and not self.has_rootfs:
            raise BadRequest("unified image has no rootfs/ directory")
