"""Container paths, ids and errors for :mod:`services.instance.rootfs_files` (no I/O).

Paths are the container's view (``/etc/hosts``); ids convert between the container's and the
host's through the instance's id map; an OSError of the host becomes the LXD-like error a
client gets.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
from collections.abc import Iterator

from schemas.errors import BadRequest, Conflict, Forbidden, NotFound, WarrenError
from schemas.storage import VolumeIdMap

#: What the container sees for a host id outside its map (the kernel's overflowuid).
OVERFLOW_ID = 65534


def clean_path(path: str) -> str:
    """The container path to act on: absolute (LXD takes a relative one from ``/``), no NUL,
    no trailing slash, no empty components. ``..`` stays: the kernel resolves it in the root."""
    if not isinstance(path, str) or not path:
        raise BadRequest("Missing path argument")
    if "\0" in path:
        raise BadRequest("Invalid path: it contains a NUL byte")
    parts = [part for part in path.split("/") if part]
    return "/" + "/".join(parts)


def split_path(path: str) -> tuple[str, str]:
    """``(parent, name)`` of a cleaned path; BadRequest for ``/`` or a ``.``/``..`` name."""
    parent, name = posixpath.split(path)
    if not name or name in (".", ".."):
        raise BadRequest(f"Invalid path {path!r}: it does not name a file")
    return parent or "/", name


def symlink_display(path: str, target: str) -> str:
    """A symlink's target as LXD reports it: absolute (relative ones joined to the link's
    directory) and lexically cleaned."""
    joined = target if target.startswith("/") else posixpath.join(posixpath.dirname(path), target)
    return posixpath.normpath("/" + joined.lstrip("/"))


def follow_link(path: str, target: str) -> str:
    """The path a symlink at ``path`` leads to (not normalised: ``..`` after a symlink is the
    kernel's to resolve)."""
    if target.startswith("/"):
        return clean_path(target)
    return clean_path(posixpath.dirname(path) + "/" + target)


def to_container_id(host_id: int, idmap: VolumeIdMap | None) -> int:
    if idmap is None:
        return host_id
    if idmap.host_base <= host_id < idmap.host_base + idmap.count:
        return host_id - idmap.host_base
    return OVERFLOW_ID


def to_host_id(container_id: int, idmap: VolumeIdMap | None, what: str = "id") -> int:
    if container_id < 0:
        raise BadRequest(f"Invalid {what} {container_id}")
    if idmap is None:
        return container_id
    if container_id >= idmap.count:
        raise BadRequest(f"{what} {container_id} is outside the instance's id range")
    return idmap.host_base + container_id


def check_mode(mode: int | None) -> int | None:
    if mode is not None and not 0 <= mode <= 0o7777:
        raise BadRequest(f"Invalid mode {mode:o}")
    return mode


def file_kind(st: os.stat_result) -> str:
    """``file``, ``directory``, ``symlink`` (LXD's types) or ``special``."""
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    return "special"


def translate(exc: OSError, path: str) -> WarrenError:
    """An OSError of the host as the LXD-like error a client gets."""
    code = exc.errno
    if code in (errno.ENOENT, errno.ENOTDIR):  # ENOTDIR: a parent is a file
        return NotFound(f"Path {path} not found")
    if code == errno.EISDIR:
        return BadRequest(f"Path {path} is a directory")
    if code == errno.ENOTEMPTY:
        return BadRequest(f"Directory {path} is not empty")
    if code == errno.EEXIST:
        return Conflict(f"Path {path} already exists")
    if code == errno.ELOOP:
        return BadRequest(f"Path {path}: too many levels of symbolic links")
    if code in (errno.ENAMETOOLONG, errno.EINVAL):
        return BadRequest(f"Invalid path {path}: {os.strerror(code)}")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return Forbidden(f"Path {path}: {os.strerror(code)}")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return WarrenError(f"Writing {path} failed: {os.strerror(code)}")
    return WarrenError(f"File operation on {path} failed: {exc.strerror or exc}")


@contextlib.contextmanager
def translated(path: str) -> Iterator[None]:
    """OSErrors within become :func:`translate`'s errors for ``path``."""
    try:
        yield
    except OSError as exc:
        raise translate(exc, path) from exc
