"""Safe file access inside an instance's root filesystem, from the host.

Paths are the container's view (``/etc/hosts``). Every lookup goes through ``openat2`` with
``RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`` on an ``O_PATH`` fd of the rootfs, so ``..``,
absolute symlinks and symlinks planted inside the container resolve inside the root, as they
would for a process of the container; nothing outside it can be reached. Changes act with
``*at()`` calls on (an fd of the parent directory, a plain name), never on a host path string,
so a container process racing us cannot redirect them either.

Ids are shown as the container sees them: with an id map, host id ``host_base + N`` is
container id N (an id outside the range shows as 65534, the overflow id). Names are created,
renamed and removed with the container's root as file-system user (``setfsuid`` in the
worker thread, root's capabilities kept effective): through an idmapped mount the kernel
refuses such changes (EOVERFLOW) to host root, whom the mount does not map. New files are
then chowned to the ids asked for.

LXD's behaviour (its SFTP-based file API of 5.x) is followed where it matters to clients:
relative paths are taken from ``/``; writing to a symlink writes its target; a symlink's
``target`` is reported as an absolute, lexically cleaned path; ``mode`` shows the permission
bits; deleting removes a file, a symlink or an empty directory. Every blocking call runs in
``asyncio.to_thread``.

The pieces: :mod:`~services.instance.rootfs_syscalls` (openat2, creating as another user),
:mod:`~services.instance.rootfs_paths` (paths, ids, errors) and
:mod:`~services.instance.rootfs_transfer` (the reader and writer of a file's content).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from schemas.errors import BadRequest, NotFound, WarrenError
from schemas.instances import FileInfo
from schemas.storage import VolumeIdMap
from services.instance.rootfs_paths import (
    OVERFLOW_ID,
    check_mode,
    clean_path,
    file_kind,
    follow_link,
    split_path,
    symlink_display,
    to_container_id,
    to_host_id,
    translate,
    translated,
)
from services.instance.rootfs_syscalls import creating_as, openat2
from services.instance.rootfs_transfer import FileReader, FileWriter, Target, in_thread

# What the callers import from here (the pieces live in the modules named above).
__all__ = [
    "DEFAULT_DIR_MODE",
    "DEFAULT_FILE_MODE",
    "OVERFLOW_ID",
    "FileReader",
    "FileWriter",
    "RootFS",
    "check_mode",
    "clean_path",
    "follow_link",
    "split_path",
    "symlink_display",
    "to_container_id",
    "to_host_id",
    "translate",
]

DEFAULT_FILE_MODE = 0o644
DEFAULT_DIR_MODE = 0o755
_MAX_SYMLINK_HOPS = 40  # the kernel's own limit


class RootFS:
    """One instance's root filesystem as its container sees it."""

    def __init__(self, root: Path, idmap: VolumeIdMap | None = None) -> None:
        self.root = Path(root)
        self.idmap = idmap

    # -- async interface -------------------------------------------------------------------

    async def info(self, path: str) -> FileInfo:
        """What ``path`` is (not following a final symlink): type, ids, mode, entries."""
        cpath = clean_path(path)
        return await in_thread(self._info, cpath)

    async def open_read(self, path: str) -> tuple[FileInfo, FileReader | None]:
        """Its info and, for a regular file, a reader of its content (close it)."""
        cpath = clean_path(path)
        return await in_thread(self._open_read, cpath)

    async def read_bytes(self, path: str, limit: int = 1 << 20) -> bytes:
        """The first ``limit`` bytes of a regular file (small files such as /etc/passwd)."""
        info, reader = await self.open_read(path)
        if reader is None:
            raise BadRequest(f"Path {clean_path(path)} is a {info.type}, not a file")
        try:
            return await in_thread(reader.read_some, limit)
        finally:
            await reader.close()

    async def open_write(
        self,
        path: str,
        *,
        uid: int | None = None,
        gid: int | None = None,
        mode: int | None = None,
        append: bool = False,
    ) -> FileWriter:
        """A writer for ``path`` (following a final symlink, as LXD does). Overwrite writes a
        temporary file beside it and renames it over at :meth:`FileWriter.commit` (a failed
        transfer leaves the old content); append appends in place. The parent must exist."""
        cpath = clean_path(path)
        check_mode(mode)
        ids = (self._host_id(uid, "uid"), self._host_id(gid, "gid"))
        return await in_thread(self._open_write, cpath, ids, mode, append)

    async def write_file(self, path: str, data: bytes) -> None:
        """Write a small file whole, as :meth:`open_write` then commit would (a new file is
        the container root's, 0644; an existing one keeps its ids and mode), in one call to
        a worker thread."""
        cpath = clean_path(path)
        await in_thread(self._write_file, cpath, data)

    async def mkdir(
        self, path: str, *, uid: int | None = None, gid: int | None = None, mode: int | None = None
    ) -> bool:
        """Make a directory (0755, 0:0 unless given); an existing one is fine (and left as it
        is). True when it was created."""
        cpath = clean_path(path)
        check_mode(mode)
        ids = (self._host_id(uid, "uid"), self._host_id(gid, "gid"))
        return await in_thread(self._mkdir, cpath, ids, mode)

    async def symlink(
        self, path: str, target: str, *, uid: int | None = None, gid: int | None = None
    ) -> None:
        """Make ``path`` a symlink to ``target`` (a symlink already there is replaced)."""
        cpath = clean_path(path)
        if not target or "\0" in target:
            raise BadRequest("Invalid symlink target")
        ids = (self._host_id(uid, "uid"), self._host_id(gid, "gid"))
        await in_thread(self._symlink, cpath, target, ids)

    async def delete(self, path: str) -> None:
        """Remove a file, a symlink (not its target) or an empty directory."""
        cpath = clean_path(path)
        await in_thread(self._delete, cpath)

    # -- ids -------------------------------------------------------------------------------

    def _host_id(self, container_id: int | None, what: str) -> int | None:
        return None if container_id is None else to_host_id(container_id, self.idmap, what)

    def _default_host_id(self) -> int:
        return self.idmap.host_base if self.idmap is not None else 0

    def _acting(self) -> contextlib.AbstractContextManager[None]:
        """Changes of names (create, rename, remove) as the container's root: through an
        idmapped mount the kernel refuses them to an fsuid the mount does not map."""
        base = self._default_host_id()
        return creating_as(base, base)

    def _info_of(self, cpath: str, st: os.stat_result, fd: int) -> FileInfo:
        kind = file_kind(st)
        if kind == "special":
            # A fifo or a device node: reading one could block or act on a host device.
            raise BadRequest(f"Path {cpath} is not a regular file, directory or symlink")
        info = FileInfo(
            type=kind,  # type: ignore[arg-type]
            uid=to_container_id(st.st_uid, self.idmap),
            gid=to_container_id(st.st_gid, self.idmap),
            mode=stat.S_IMODE(st.st_mode) & 0o777,
            size=st.st_size if kind == "file" else 0,
        )
        if kind == "directory":
            dirfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            try:
                info.entries = sorted(os.listdir(dirfd))
            finally:
                os.close(dirfd)
        elif kind == "symlink":
            raw = os.readlink("", dir_fd=fd)
            info.target = symlink_display(cpath, raw)
            info.size = len(os.fsencode(info.target))
        return info

    # -- synchronous work (in a thread) ----------------------------------------------------

    def _root_fd(self) -> int:
        try:
            return os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise WarrenError(f"the instance's root filesystem is not available: {exc}") from exc

    def _lookup(self, cpath: str) -> int:
        """An O_PATH fd of ``cpath`` itself (a final symlink is not followed)."""
        rootfd = self._root_fd()
        try:
            return openat2(rootfd, cpath, os.O_PATH | os.O_NOFOLLOW)
        finally:
            os.close(rootfd)

    def _info(self, cpath: str) -> FileInfo:
        with translated(cpath):
            fd = self._lookup(cpath)
            try:
                return self._info_of(cpath, os.fstat(fd), fd)
            finally:
                os.close(fd)

    def _open_read(self, cpath: str) -> tuple[FileInfo, FileReader | None]:
        with translated(cpath):
            fd = self._lookup(cpath)
            try:
                st = os.fstat(fd)
                info = self._info_of(cpath, st, fd)
                if info.type != "file":
                    return info, None
                # Reopen the very inode the O_PATH fd pins (never a name that could change).
                readable = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
                return info, FileReader(readable, cpath)
            finally:
                os.close(fd)

    def _target(self, cpath: str, follow: bool) -> Target:
        """The parent directory (pinned) and name ``cpath`` acts on; with ``follow``, final
        symlinks are followed (inside the root) to the name they lead to."""
        path = cpath
        rootfd = self._root_fd()
        try:
            for _ in range(_MAX_SYMLINK_HOPS):
                parent, name = split_path(path)
                with translated(parent):
                    parent_fd = openat2(rootfd, parent, os.O_PATH | os.O_DIRECTORY)
                try:
                    st: os.stat_result | None = os.stat(
                        name, dir_fd=parent_fd, follow_symlinks=False
                    )
                except FileNotFoundError:
                    st = None
                except OSError as exc:
                    os.close(parent_fd)
                    raise translate(exc, path) from exc
                if follow and st is not None and stat.S_ISLNK(st.st_mode):
                    try:
                        link = os.readlink(name, dir_fd=parent_fd)
                    finally:
                        os.close(parent_fd)
                    path = follow_link(path, link)
                    continue
                return Target(parent_fd, name, path, st)
        finally:
            os.close(rootfd)
        raise BadRequest(f"Path {cpath}: too many levels of symbolic links")

    def _open_write(
        self, cpath: str, ids: tuple[int | None, int | None], mode: int | None, append: bool
    ) -> FileWriter:
        target = self._target(cpath, follow=True)
        try:
            st = target.st
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise BadRequest(f"Path {target.path} is a directory")
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise BadRequest(f"Path {target.path} is not a regular file")
            if st is None:
                owner = (
                    ids[0] if ids[0] is not None else self._default_host_id(),
                    ids[1] if ids[1] is not None else self._default_host_id(),
                )
                final_mode = DEFAULT_FILE_MODE if mode is None else mode
            else:
                # An existing file keeps its own ids and mode unless given.
                owner = (
                    ids[0] if ids[0] is not None else st.st_uid,
                    ids[1] if ids[1] is not None else st.st_gid,
                )
                final_mode = stat.S_IMODE(st.st_mode) if mode is None else mode
            flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            with translated(target.path):
                if append and st is not None:
                    fd = os.open(target.name, flags | os.O_APPEND, dir_fd=target.parent_fd)
                    return FileWriter(
                        self._acting, target, fd, None, owner, final_mode, created=False
                    )
                name = target.name if append else f".warren-{secrets.token_hex(8)}.tmp"
                with self._acting():
                    fd = os.open(
                        name, flags | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=target.parent_fd
                    )
                temp = None if append else name
                return FileWriter(self._acting, target, fd, temp, owner, final_mode, created=True)
        except BaseException:
            target.close()
            raise

    def _write_file(self, cpath: str, data: bytes) -> None:
        writer = self._open_write(cpath, (None, None), None, False)
        try:
            writer.write_now(data)
        except BaseException:
            writer.abort_now()
            raise
        writer.commit_now()

    def _mkdir(self, cpath: str, ids: tuple[int | None, int | None], mode: int | None) -> bool:
        target = self._target(cpath, follow=True)
        try:
            if target.st is not None:
                if stat.S_ISDIR(target.st.st_mode):
                    return False
                raise BadRequest(f"Path {target.path} exists and is not a directory")
            with translated(target.path), self._acting():
                os.mkdir(target.name, 0o700, dir_fd=target.parent_fd)
                fd = os.open(
                    target.name,
                    os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                    dir_fd=target.parent_fd,
                )
                try:
                    base = self._default_host_id()
                    uid = base if ids[0] is None else ids[0]
                    gid = base if ids[1] is None else ids[1]
                    os.fchown(fd, uid, gid)
                    os.fchmod(fd, DEFAULT_DIR_MODE if mode is None else mode)
                finally:
                    os.close(fd)
            return True
        finally:
            target.close()

    def _symlink(self, cpath: str, link: str, ids: tuple[int | None, int | None]) -> None:
        target = self._target(cpath, follow=False)
        try:
            st = target.st
            if st is not None and not stat.S_ISLNK(st.st_mode):
                kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
                raise BadRequest(f"Path {cpath} exists and is a {kind}, not a symlink")
            base = self._default_host_id()
            uid = base if ids[0] is None else ids[0]
            gid = base if ids[1] is None else ids[1]
            with translated(cpath), self._acting():
                if st is not None and os.readlink(target.name, dir_fd=target.parent_fd) == link:
                    os.chown(target.name, uid, gid, dir_fd=target.parent_fd, follow_symlinks=False)
                    return
                # Made aside and renamed over: a symlink already there is replaced in one step.
                temp = f".warren-{secrets.token_hex(8)}.tmp"
                os.symlink(link, temp, dir_fd=target.parent_fd)
                try:
                    os.chown(temp, uid, gid, dir_fd=target.parent_fd, follow_symlinks=False)
                    os.rename(
                        temp, target.name, src_dir_fd=target.parent_fd, dst_dir_fd=target.parent_fd
                    )
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(temp, dir_fd=target.parent_fd)
                    raise
        finally:
            target.close()

    def _delete(self, cpath: str) -> None:
        if cpath == "/":
            raise BadRequest("The root directory cannot be deleted")
        target = self._target(cpath, follow=False)
        try:
            if target.st is None:
                raise NotFound(f"Path {cpath} not found")
            with translated(cpath), self._acting():
                if stat.S_ISDIR(target.st.st_mode):
                    os.rmdir(target.name, dir_fd=target.parent_fd)
                else:
                    os.unlink(target.name, dir_fd=target.parent_fd)
        finally:
            target.close()
