"""Write checked archive members under a directory without ever following a symlink on the host.

Every path is walked component by component from the root's file descriptor with
``O_NOFOLLOW | O_DIRECTORY`` (openat-style), and every entry is created relative to its
parent's descriptor, so even a member the policy let through cannot redirect a write outside
the root. Directory owners, modes and times are applied at :meth:`TreeWriter.finish` (writing
children would otherwise bump the times, and a read-only mode would block them).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
from typing import BinaryIO

from schemas.errors import BadRequest
from services.common.imagefiles.fingerprint import CHUNK
from services.common.imagefiles.members import Kind, Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class TreeWriter:
    """Create files, directories, links and nodes below ``root`` (an existing directory)."""

    def __init__(self, root: str, *, preserve_owner: bool) -> None:
        self.root_fd = os.open(root, _DIR_FLAGS)
        self.preserve_owner = preserve_owner
        self._dirs: list[tuple[Path, tarfile.TarInfo]] = []
        self._cached: tuple[Path, int] | None = None

    def close(self) -> None:
        self._drop_cache()
        os.close(self.root_fd)

    def __enter__(self) -> TreeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- walking -----------------------------------------------------------------------------

    def _drop_cache(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _open_dir(self, path: Path, create: bool) -> int:
        """A descriptor of the directory ``path`` (created 0755 if missing and ``create``)."""
        fd = os.dup(self.root_fd)
        try:
            for part in path:
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise BadRequest(
                            f"refusing to write through {'/'.join(path)!r}: "
                            f"{part!r} is not a directory"
                        ) from None
                    raise
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _parent(self, path: Path) -> int:
        """The (cached) descriptor of ``path``'s parent; members arrive directory by directory."""
        parent = path[:-1]
        if self._cached is None or self._cached[0] != parent:
            self._drop_cache()
            self._cached = (parent, self._open_dir(parent, create=True))
        return self._cached[1]

    @staticmethod
    def _clear(name: str, parent: int) -> None:
        """Remove a non-directory already at ``name`` (a later member replaces it, as tar does)."""
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                os.unlink(name, dir_fd=parent)

    # -- entries -----------------------------------------------------------------------------

    def add(self, path: Path, kind: Kind, member: tarfile.TarInfo, data: BinaryIO | None) -> None:
        """Create ``path`` as ``member`` describes (``data``: the member's bytes for files)."""
        if kind == "dir":
            self._mkdir(path)
            self._dirs.append((path, member))
            return
        parent = self._parent(path)
        name = path[-1]
        self._clear(name, parent)
        if kind == "file":
            self._write_file(parent, name, member, data)
        elif kind == "symlink":
            os.symlink(member.linkname, name, dir_fd=parent)
            self._owner_times(parent, name, member)
        elif kind == "hardlink":
            raise ValueError("hardlinks go through add_hardlink")
        else:
            fmt = {"fifo": stat.S_IFIFO, "chr": stat.S_IFCHR, "blk": stat.S_IFBLK}[kind]
            dev = os.makedev(member.devmajor, member.devminor) if kind != "fifo" else 0
            os.mknod(name, fmt | (member.mode & 0o777), dev, dir_fd=parent)
            self._owner_times(parent, name, member)
            os.chmod(name, member.mode & 0o7777, dir_fd=parent)

    def add_hardlink(self, path: Path, target: Path) -> None:
        """Link ``path`` to the already written regular file ``target``."""
        src_parent = self._open_dir(target[:-1], create=False)
        try:
            parent = self._parent(path)
            self._clear(path[-1], parent)
            os.link(
                target[-1],
                path[-1],
                src_dir_fd=src_parent,
                dst_dir_fd=parent,
                follow_symlinks=False,
            )
        finally:
            os.close(src_parent)

    def _mkdir(self, path: Path) -> None:
        if not path:
            return
        parent = self._parent(path)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path[-1], 0o700, dir_fd=parent)

    def _write_file(
        self, parent: int, name: str, member: tarfile.TarInfo, data: BinaryIO | None
    ) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=parent)
        try:
            written = 0
            if data is not None:
                while chunk := data.read(CHUNK):
                    _write_all(fd, chunk)
                    written += len(chunk)
            if written != member.size:
                raise BadRequest("corrupt or truncated archive: unexpected end of data")
            self._fd_meta(fd, member)
        finally:
            os.close(fd)

    # -- ownership, modes, times --------------------------------------------------------------

    def _fd_meta(self, fd: int, member: tarfile.TarInfo) -> None:
        if self.preserve_owner:
            os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode & 0o7777)  # after chown, which clears setuid bits
        os.utime(fd, ns=(int(member.mtime * 1e9),) * 2)

    def _owner_times(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        if self.preserve_owner:
            os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        os.utime(name, ns=(int(member.mtime * 1e9),) * 2, dir_fd=parent, follow_symlinks=False)

    def finish(self) -> None:
        """Apply directory owners, modes and times, deepest first."""
        self._drop_cache()
        for path, member in reversed(self._dirs):
            fd = self._open_dir(path, create=False)
            try:
                self._fd_meta(fd, member)
            finally:
                os.close(fd)
        self._dirs.clear()


def _write_all(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view) :]
